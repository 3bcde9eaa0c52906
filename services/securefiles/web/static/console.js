// Progressive enhancement only: every form works without this file.
// 1. Uploads show a progress bar (the same form is sent with XMLHttpRequest); the page the
//    server answers with (the file, or the form again with what went wrong) replaces this one.
// 2. A typed confirmation enables its button only once the text matches (the server checks again).
// 3. A check's form shows only the settings of the kind chosen.
"use strict";
(function () {
  function showAnswer(request) {
    var answer = request.response;
    if (!answer || !answer.body) { window.location.assign(request.responseURL); return; }
    document.title = answer.title;
    document.body.replaceWith(document.importNode(answer.body, true));
    window.history.replaceState(null, "", request.responseURL);
    enhance(document);
  }

  function enhanceUpload(form) {
    form.addEventListener("submit", function (event) {
      var bar = form.querySelector("progress");
      if (!bar || !window.XMLHttpRequest || !window.FormData) { return; }
      event.preventDefault();
      var button = form.querySelector("button[type=submit]");
      if (button) { button.disabled = true; }
      bar.hidden = false;
      var request = new XMLHttpRequest();
      request.open("POST", form.action);
      request.responseType = "document";
      request.upload.addEventListener("progress", function (e) {
        if (e.lengthComputable) { bar.value = Math.round(100 * e.loaded / e.total); }
      });
      request.addEventListener("load", function () { showAnswer(request); });
      request.addEventListener("error", function () {
        bar.hidden = true;
        if (button) { button.disabled = false; }
        var note = document.createElement("p");
        note.className = "flash flash-error";
        note.setAttribute("role", "alert");
        note.textContent = "The upload did not reach the server: check the connection and try again.";
        form.prepend(note);
      });
      request.send(new FormData(form));
    });
  }

  function enhance(root) {
    root.querySelectorAll("form[data-upload]").forEach(enhanceUpload);
    root.querySelectorAll("select[data-check-kind]").forEach(function (select) {
      var update = function () {
        select.form.querySelectorAll("fieldset[data-kind]").forEach(function (fieldset) {
          fieldset.hidden = fieldset.getAttribute("data-kind") !== select.value;
        });
      };
      select.addEventListener("change", update);
      update();
    });
    root.querySelectorAll("input[data-confirm]").forEach(function (input) {
      var button = input.form && input.form.querySelector("button[type=submit]");
      if (!button) { return; }
      var update = function () { button.disabled = input.value !== input.getAttribute("data-confirm"); };
      input.addEventListener("input", update);
      update();
    });
  }

  document.addEventListener("DOMContentLoaded", function () { enhance(document); });
})();
