// Home page: drag-and-drop onto the drop zone, a preview before sending, and the camera input.
// Without JavaScript the plain file inputs and the form still work.
(function () {
  "use strict";
  var form = document.getElementById("upload");
  if (!form) return;
  var drop = document.getElementById("drop");
  var picker = document.getElementById("image");
  var camera = document.getElementById("photo");
  var preview = document.getElementById("preview");
  var label = document.getElementById("preview-name");

  function show(file) {
    if (!file) return;
    if (preview.src) URL.revokeObjectURL(preview.src);
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
    label.textContent = "Ready to check: " + file.name + " (" + Math.round(file.size / 1024) + " KB)";
  }
  picker.addEventListener("change", function () { camera.value = ""; show(picker.files[0]); });
  camera.addEventListener("change", function () { picker.value = ""; show(camera.files[0]); });
  ["dragenter", "dragover"].forEach(function (kind) {
    drop.addEventListener(kind, function (event) { event.preventDefault(); drop.classList.add("dragging"); });
  });
  ["dragleave", "drop"].forEach(function (kind) {
    drop.addEventListener(kind, function () { drop.classList.remove("dragging"); });
  });
  drop.addEventListener("drop", function (event) {
    event.preventDefault();
    if (!event.dataTransfer.files.length) return;
    var transfer = new DataTransfer();
    transfer.items.add(event.dataTransfer.files[0]);
    picker.files = transfer.files;
    camera.value = "";
    show(picker.files[0]);
  });
  form.addEventListener("submit", function (event) {
    if (!picker.files.length && !camera.files.length) {
      event.preventDefault();
      label.textContent = "Choose or drop a photo first.";
    }
  });
})();
