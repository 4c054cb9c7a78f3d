// Result page: the print button, and the triage chat that replaces the plain triage form.
// The chat is stateless on the server: every turn sends all answers so far to POST /api/v1/triage.
(function () {
  "use strict";
  var printButton = document.getElementById("print");
  if (printButton) {
    printButton.hidden = false;
    printButton.addEventListener("click", function () { window.print(); });
  }
  var form = document.getElementById("triage-form");
  var chat = document.getElementById("chat");
  if (!form || !chat || !window.fetch) return;

  var result = {};
  var answers = {};
  form.querySelectorAll("input[type=hidden]").forEach(function (input) {
    if (input.name.indexOf("result_") === 0) result[input.name.slice(7)] = input.value;
  });
  form.querySelectorAll("input[type=radio]:checked").forEach(function (input) {
    if (input.value !== "unsure") answers[input.name] = input.value;
  });

  function say(who, text, source) {
    var bubble = document.createElement("div");
    bubble.className = "msg " + who;
    bubble.textContent = text;
    if (source && source.url) {
      var link = document.createElement("a");
      link.className = "source";
      link.href = source.url;
      link.rel = "noopener";
      link.textContent = "Source: " + source.title;
      bubble.appendChild(link);
    }
    chat.appendChild(bubble);
    bubble.scrollIntoView({ block: "nearest" });
    return bubble;
  }

  function post(extra) {
    var body = { answers: answers, result: result };
    Object.keys(extra || {}).forEach(function (key) { body[key] = extra[key]; });
    return fetch("/api/v1/triage", {
      method: "POST", headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.json().then(function (data) {
        if (!response.ok) throw new Error(data.message || "The triage service did not answer.");
        return data;
      });
    });
  }

  var actions = document.createElement("div");
  actions.className = "chat-actions";

  function ask(step) {
    actions.innerHTML = "";
    if (!step.question) { conclude(step); return; }
    say("bot", step.question.text + (step.question.help ? " (" + step.question.help + ")" : ""));
    [["yes", "Yes"], ["no", "No"], ["unsure", "Not sure"]].forEach(function (pair, index) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "button secondary";
      button.textContent = pair[1];
      button.dataset.answer = pair[0];
      button.addEventListener("click", function () {
        say("me", pair[1]);
        answers[step.question.id] = pair[0];
        actions.innerHTML = "";
        post().then(ask).catch(fail);
      });
      actions.appendChild(button);
      if (index === 0) setTimeout(function () { button.focus(); }, 0);
    });
    chat.appendChild(actions);
  }

  function conclude(step) {
    var bubble = say("bot", step.urgency.title + ": " + step.urgency.advice, step.urgency.source);
    bubble.classList.add("conclusion");
    say("bot", step.summary);
  }

  function fail(error) { say("bot", error.message); }

  var askForm = document.createElement("form");
  askForm.className = "chat-ask";
  askForm.innerHTML = '<label class="visually-hidden" for="chat-question">Ask a question</label>' +
    '<input type="text" id="chat-question" maxlength="500" placeholder="Ask a question, e.g. what causes it?">' +
    '<button type="submit" class="button primary">Ask</button>';
  askForm.addEventListener("submit", function (event) {
    event.preventDefault();
    var input = askForm.querySelector("input");
    var question = input.value.trim();
    if (!question) return;
    say("me", question);
    input.value = "";
    post({ question: question }).then(function (step) {
      if (step.answer) say("bot", step.answer.text, step.answer.source);
    }).catch(fail);
  });

  form.hidden = true;
  chat.hidden = false;
  chat.insertAdjacentElement("afterend", askForm);
  say("bot", "I will ask a few questions about the lesion. Answer what you can; “Not sure” is fine.");
  post().then(ask).catch(fail);
})();
