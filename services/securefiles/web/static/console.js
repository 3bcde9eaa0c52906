// Progressive enhancement only: every form works without this file.
// 1. Uploads show a progress bar (the same form is sent with XMLHttpRequest).
// 2. A typed confirmation enables its button only once the text matches (the server checks again).
// 3. A check's form shows only the settings of the kind chosen.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("form[data-upload]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      var bar = form.querySelector("progress");
      if (!bar || !window.XMLHttpRequest || !window.FormData) { return; }
      event.preventDefault();
      var button = form.querySelector("button[type=submit]");
      if (button) { button.disabled = true; }
      bar.hidden = false;
      var request = new XMLHttpRequest();
      request.open("POST", form.action);
      request.upload.addEventListener("progress", function (e) {
        if (e.lengthComputable) { bar.value = Math.round(100 * e.loaded / e.total); }
      });
      request.addEventListener("load", function () {
        // The server answered with a redirect to the file (or back with a message): go there.
        window.location.assign(request.responseURL || form.action);
      });
      request.addEventListener("error", function () {
        bar.hidden = true;
        if (button) { button.disabled = false; }
        window.alert("The upload failed: check the connection and try again.");
      });
      request.send(new FormData(form));
    });
  });
  document.querySelectorAll("select[data-check-kind]").forEach(function (select) {
    var update = function () {
      select.form.querySelectorAll("fieldset[data-kind]").forEach(function (fieldset) {
        fieldset.hidden = fieldset.getAttribute("data-kind") !== select.value;
      });
    };
    select.addEventListener("change", update);
    update();
  });
  document.querySelectorAll("input[data-confirm]").forEach(function (input) {
    var button = input.form && input.form.querySelector("button[type=submit]");
    if (!button) { return; }
    var update = function () { button.disabled = input.value !== input.getAttribute("data-confirm"); };
    input.addEventListener("input", update);
    update();
  });
});
