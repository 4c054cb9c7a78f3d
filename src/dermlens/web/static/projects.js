// Project pages: upload progress, grid selection, live training progress, the threshold slider, quick
// test, export and one-click review. Every form also works without JavaScript (it posts to a page
// route); here the same actions go through the JSON API, which takes the same admin cookie.
(function () {
  "use strict";

  function byId(id) { return document.getElementById(id); }

  function pct(value) {
    return value === null || value === undefined ? "\u2014" : (value * 100).toFixed(1) + "%";
  }

  // JSON from the API, or an Error carrying the API's message
  function api(url, options) {
    options = options || {};
    var headers = { "Accept": "application/json" };
    if (options.json !== undefined) headers["Content-Type"] = "application/json";
    return fetch(url, {
      method: options.method || "GET", credentials: "same-origin", headers: headers,
      body: options.json !== undefined ? JSON.stringify(options.json) : options.body
    }).then(function (response) {
      return response.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (ignored) { data = null; }
        if (!response.ok) {
          var message = data && data.message ? data.message : "The server answered " + response.status + ".";
          if (response.status === 401) message = "Your sign-in has expired: reload the page and sign in again.";
          throw new Error(message);
        }
        return data;
      });
    });
  }

  function show(element, text) {
    if (!element) return;
    var paragraph = element.querySelector("p") || element;
    paragraph.textContent = text;
    element.hidden = !text;
  }

  // forms (or their buttons) with data-confirm ask first ------------------------------------------
  document.addEventListener("submit", function (event) {
    var source = event.submitter && event.submitter.dataset.confirm ? event.submitter : event.target;
    var question = source.dataset ? source.dataset.confirm : null;
    if (question && !window.confirm(question)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  // redraw parts of this page from a fresh copy of it (after an upload) ----------------------------
  function refresh(ids) {
    return fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        ids.forEach(function (id) {
          var now = byId(id);
          var next = fresh.getElementById(id);
          if (now && next) now.innerHTML = next.innerHTML;
        });
        enhanceGrid();
      });
  }

  // upload with a progress bar -------------------------------------------------------------------
  var upload = byId("upload-form");
  if (upload) {
    var bar = byId("upload-progress");
    var status = byId("upload-status");
    var button = byId("upload-submit");
    upload.addEventListener("submit", function (event) {
      event.preventDefault();
      var body = new FormData();
      var count = 0;
      upload.querySelectorAll("input[type=file]").forEach(function (input) {
        Array.prototype.forEach.call(input.files, function (file) {
          // a folder's files keep their folder: folder names can tag the images
          body.append(input.name, file, file.webkitRelativePath || file.name);
          count += 1;
        });
      });
      if (!count) {
        status.dataset.state = "error";
        status.textContent = "Choose image files, a folder or a zip archive first.";
        return;
      }
      var tag = byId("upload-tag");
      if (tag && tag.value) body.append("tag", tag.value);
      var request = new XMLHttpRequest();
      request.open("POST", upload.dataset.api);
      request.setRequestHeader("Accept", "application/json");
      request.upload.addEventListener("progress", function (progress) {
        if (!progress.lengthComputable) return;
        bar.value = progress.loaded / progress.total;
        status.textContent = progress.loaded < progress.total
          ? "Uploading " + count + " file" + (count === 1 ? "" : "s") + ": " + Math.round(bar.value * 100) + "%"
          : "Uploaded; storing the images\u2026";
      });
      request.addEventListener("load", function () {
        var data = null;
        try { data = JSON.parse(request.responseText); } catch (ignored) { data = null; }
        button.disabled = false;
        bar.hidden = true;
        if (request.status >= 400 || !data) {
          status.dataset.state = "error";
          status.textContent = (data && data.message) || "The upload failed (" + request.status + ").";
          return;
        }
        var parts = [data.added.length + " image" + (data.added.length === 1 ? "" : "s") + " added"];
        if (data.duplicates.length) parts.push(data.duplicates.length + " already in the project");
        if (data.refused.length) {
          parts.push(data.refused.length + " refused (" + data.refused.map(function (r) {
            return r.name + ": " + r.reason;
          }).join("; ") + ")");
        }
        status.textContent = parts.join(", ") + ".";
        upload.reset();
        refresh(["tags", "images", "train-readiness"]).then(function () { status.dataset.state = "done"; });
      });
      request.addEventListener("error", function () {
        button.disabled = false;
        bar.hidden = true;
        status.dataset.state = "error";
        status.textContent = "The upload did not reach the server; check the connection and try again.";
      });
      status.dataset.state = "uploading";
      status.textContent = "Uploading\u2026";
      bar.value = 0;
      bar.hidden = false;
      button.disabled = true;
      request.send(body);
    });
  }

  // the grid: "select all" and how many are selected ----------------------------------------------
  function enhanceGrid() {
    var all = byId("select-all");
    if (!all) return;
    all.closest("label").hidden = false;
    all.checked = false;
    count();
  }

  function count() {
    var boxes = document.querySelectorAll("#grid-form input[name=image]");
    var ticked = document.querySelectorAll("#grid-form input[name=image]:checked").length;
    var label = byId("selected-count");
    if (label) label.textContent = ticked ? ticked + " selected" : "";
    var all = byId("select-all");
    if (all) {
      all.checked = ticked > 0 && ticked === boxes.length;
      all.indeterminate = ticked > 0 && ticked < boxes.length;
    }
  }

  document.addEventListener("change", function (event) {
    if (event.target.id === "select-all") {
      document.querySelectorAll("#grid-form input[name=image]").forEach(function (box) {
        box.checked = event.target.checked;
      });
      count();
    } else if (event.target.name === "image" && event.target.closest("#grid-form")) {
      count();
    }
  });
  enhanceGrid();

  // training: start it, then follow its progress -------------------------------------------------
  var trainStatus = byId("train-status");

  function drawIteration(iteration) {
    trainStatus.hidden = false;
    trainStatus.dataset.iteration = iteration.number;
    trainStatus.dataset.status = iteration.status;
    byId("train-number").textContent = iteration.number;
    byId("train-state").textContent = iteration.status;
    byId("train-progress").value = iteration.progress || 0;
    byId("train-message").textContent = iteration.message;
    var warnings = byId("train-warnings");
    warnings.innerHTML = "";
    (iteration.warnings || []).forEach(function (text) {
      var item = document.createElement("li");
      item.textContent = text;
      warnings.appendChild(item);
    });
    var link = byId("train-link");
    if (link) {
      link.href = trainStatus.dataset.page + iteration.number;
      link.textContent = iteration.status === "completed" ? "See the metrics of iteration " + iteration.number
        : iteration.status === "failed" ? "Iteration " + iteration.number + " failed: see its page"
          : "Follow it on its page";
    }
  }

  function follow(number) {
    api(trainStatus.dataset.api + "/" + number).then(function (iteration) {
      drawIteration(iteration);
      if (iteration.status === "queued" || iteration.status === "running") {
        setTimeout(function () { follow(number); }, 1000);
      } else if (trainStatus.dataset.reload) {
        window.location.reload();  // the iteration page: show the metrics (or the failure) drawn by the server
      } else {
        var submit = byId("train-submit");
        if (submit) submit.disabled = false;
        refresh(["iterations", "images"]);
      }
    }).catch(function (error) {
      byId("train-message").textContent = error.message + " Retrying\u2026";
      setTimeout(function () { follow(number); }, 3000);
    });
  }

  if (trainStatus && trainStatus.dataset.iteration &&
      (trainStatus.dataset.status === "queued" || trainStatus.dataset.status === "running")) {
    follow(trainStatus.dataset.iteration);
  }

  var train = byId("train-form");
  if (train) {
    train.addEventListener("submit", function (event) {
      event.preventDefault();
      var kind = train.querySelector("input[name=kind]:checked").value;
      var budget = parseFloat(byId("budget").value) || 10;
      var refusal = byId("train-error");
      var submit = byId("train-submit");
      show(refusal, "");
      submit.disabled = true;
      api(train.dataset.api, { method: "POST", json: { kind: kind, budget_minutes: budget } })
        .then(function (iteration) {
          drawIteration(iteration);
          follow(iteration.number);
        })
        .catch(function (error) {
          submit.disabled = false;
          show(refusal, error.message);
          refusal.scrollIntoView({ block: "nearest" });
        });
    });
  }

  // metrics: the threshold slider --------------------------------------------------------------------
  var metrics = byId("metrics");
  var slider = byId("threshold");
  if (metrics && slider && slider.type === "range") {
    var apply = byId("threshold-apply");
    if (apply) apply.hidden = true;
    var shown = byId("threshold-value");
    var timer = null;
    var asked = 0;
    var redraw = function () {
      var threshold = parseFloat(slider.value).toFixed(2);
      var mine = ++asked;
      metrics.classList.add("updating");
      api(metrics.dataset.api + "?threshold=" + threshold).then(function (data) {
        if (mine !== asked) return;  // a newer position of the slider is on its way
        byId("overall-precision").textContent = pct(data.precision);
        byId("overall-recall").textContent = pct(data.recall);
        byId("overall-map").textContent = pct(data.mean_average_precision);
        if (byId("overall-accuracy")) byId("overall-accuracy").textContent = pct(data.accuracy);
        var byTag = {};
        data.tags.forEach(function (tag) { byTag[tag.tag] = tag; });
        document.querySelectorAll("#tag-metrics tbody tr").forEach(function (row) {
          var tag = byTag[row.dataset.tag];
          if (!tag) return;
          row.querySelectorAll("td[data-field]").forEach(function (cell) {
            cell.textContent = pct(tag[cell.dataset.field]);
          });
        });
        byId("threshold-shown").textContent = threshold;
        metrics.dataset.threshold = threshold;
        metrics.classList.remove("updating");
        var url = new URL(window.location.href);
        url.searchParams.set("threshold", threshold);
        window.history.replaceState(null, "", url.pathname + url.search + url.hash);
        document.querySelectorAll("input[name=threshold][type=hidden]").forEach(function (input) {
          input.value = threshold;
        });
      }).catch(function (error) {
        metrics.classList.remove("updating");
        byId("threshold-shown").textContent = threshold + " (" + error.message + ")";
      });
    };
    slider.addEventListener("input", function () {
      shown.textContent = parseFloat(slider.value).toFixed(2);
      clearTimeout(timer);
      timer = setTimeout(redraw, 120);
    });

  }

  // quick test ----------------------------------------------------------------------------------------
  var quick = byId("quick-test-form");
  if (quick) {
    quick.addEventListener("submit", function (event) {
      event.preventDefault();
      var input = byId("quick-test-image");
      var output = byId("quick-test-output");
      var problem = byId("quick-test-error");
      show(problem, "");
      if (!input.files.length) { show(problem, "Choose an image first."); return; }
      var body = new FormData();
      body.append("image", input.files[0], input.files[0].name);
      output.textContent = "Testing\u2026";
      api(quick.dataset.api, { method: "POST", body: body }).then(function (data) {
        output.innerHTML = "";
        var list = document.createElement("ol");
        list.className = "ranked";
        list.id = "quick-test-results";
        data.predictions.forEach(function (prediction) {
          var item = document.createElement("li");
          var name = document.createElement("span");
          name.className = "name";
          name.textContent = prediction.tag;
          var meter = document.createElement("meter");
          meter.min = 0;
          meter.max = 1;
          meter.value = prediction.probability;
          meter.setAttribute("aria-label", prediction.tag + " probability");
          var value = document.createElement("span");
          value.className = "pct";
          value.textContent = Math.round(prediction.probability * 100) + "%";
          item.append(name, meter, value);
          list.appendChild(item);
        });
        var note = document.createElement("p");
        note.className = "disclaimer final";
        note.textContent = data.disclaimer;
        output.append(list, note);
      }).catch(function (error) {
        output.textContent = "";
        show(problem, error.message);
      });
    });
  }

  // export ---------------------------------------------------------------------------------------------
  var exporter = byId("export-form");
  if (exporter) {
    exporter.addEventListener("submit", function (event) {
      event.preventDefault();
      var format = event.submitter ? event.submitter.value : "onnx";
      var result = byId("export-result");
      var problem = byId("export-error");
      var buttons = exporter.querySelectorAll("button:not([disabled])");
      show(problem, "");
      buttons.forEach(function (b) { b.disabled = true; });
      result.dataset.state = "exporting";
      result.textContent = "Exporting to " + format + " and checking it against the original\u2026";
      api(exporter.dataset.api, { method: "POST", json: { format: format } }).then(function (data) {
        result.innerHTML = "";
        var box = document.createElement("div");
        box.className = "notice " + (data.verified ? "ok" : "uncertain");
        var head = document.createElement("p");
        var strong = document.createElement("strong");
        strong.textContent = data.format;
        var facts = data.produced ? "produced, " + (data.verified ? "verified" : "not verified") : "not produced";
        if (data.agreement !== null && data.agreement !== undefined) facts += ", agreement " + pct(data.agreement);
        head.append(strong, ": " + facts + ".");
        var message = document.createElement("p");
        message.textContent = data.message;
        box.append(head, message);
        if (data.download) {
          var link = document.createElement("a");
          link.className = "button primary";
          link.href = data.download;
          link.setAttribute("download", "");
          link.textContent = "Download " + data.format;
          var holder = document.createElement("p");
          holder.appendChild(link);
          box.appendChild(holder);
        }
        result.appendChild(box);
        result.dataset.state = "done";
      }).catch(function (error) {
        result.textContent = "";
        result.dataset.state = "error";
        show(problem, error.message);
      }).then(function () {
        buttons.forEach(function (b) { b.disabled = false; });
      });
    });
  }

  // review: confirm or correct with one click ------------------------------------------------------------
  document.querySelectorAll("form.review-form").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var item = form.closest(".review-item");
      var done = item.querySelector(".review-done");
      var body = {};
      var text = form.dataset.done;
      if (event.submitter && event.submitter.name === "tag_id") {
        body.tag_id = parseInt(event.submitter.value, 10);
        text += " " + event.submitter.textContent;
      }
      item.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
      api(form.dataset.api, { method: "POST", json: body }).then(function () {
        item.classList.add("done");
        item.classList.remove("wrong");
        done.textContent = text + ".";
        item.querySelector(".review-actions").hidden = true;
      }).catch(function (error) {
        item.querySelectorAll("button").forEach(function (b) { b.disabled = false; });
        done.textContent = error.message;
      });
    });
  });
})();
