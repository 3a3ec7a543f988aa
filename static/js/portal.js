// Small glue for htmx: show server errors as a toast, and open dialogs the server sends.
(function () {
  function toast(message) {
    var el = document.getElementById("toast");
    if (!el) return;
    el.textContent = message;
    el.hidden = false;
    clearTimeout(el._timer);
    el._timer = setTimeout(function () { el.hidden = true; }, 6000);
  }
  document.addEventListener("htmx:responseError", function (evt) {
    var xhr = evt.detail.xhr;
    var text = "";
    try {
      var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
      var msg = doc.querySelector("[data-testid=error-message], .flash-error");
      text = msg ? msg.textContent.trim() : "";
    } catch (e) { /* fall through */ }
    toast(text || ("Request failed (" + xhr.status + "). Nothing was changed."));
  });
  document.addEventListener("htmx:sendError", function () {
    toast("Could not reach the server. Check your connection and try again.");
  });
  document.addEventListener("htmx:afterSwap", function (evt) {
    var dialog = evt.detail.target.querySelector && evt.detail.target.querySelector("dialog[data-autoopen]");
    if (dialog && !dialog.open) { dialog.showModal(); }
  });
  window.portalToast = toast;
})();
