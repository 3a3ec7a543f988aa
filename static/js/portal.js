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
    if (dialog && !dialog.open) {
      var opener = (evt.detail.requestConfig && evt.detail.requestConfig.elt) || document.activeElement;
      dialog._opener = opener;
      dialog._openerId = opener && opener.id;
      dialog.showModal();
    }
  });
  // Dialogs: Escape or Cancel closes them and gives focus back to what opened them (or its
  // replacement with the same id); a conflict (409) is shown inside the dialog; a successful
  // post whose response replaces the dialog closes it first.
  document.addEventListener("close", function (evt) {
    var dialog = evt.target;
    if (!dialog.matches || !dialog.matches("dialog[data-autoopen]")) return;
    var opener = dialog._opener;
    var back = (opener && opener.isConnected) ? opener : (dialog._openerId && document.getElementById(dialog._openerId));
    (back || document.getElementById("main")).focus();
    setTimeout(function () { if (dialog.isConnected && !dialog.open) dialog.remove(); }, 0);
  }, true);
  document.addEventListener("click", function (evt) {
    var closer = evt.target.closest && evt.target.closest("[data-dialog-close]");
    var dialog = closer && closer.closest("dialog[data-autoopen]");
    if (dialog && dialog.open) { evt.preventDefault(); dialog.close(); }
  });
  document.addEventListener("htmx:beforeSwap", function (evt) {
    var target = evt.detail.target;
    var dialog = target && target.closest && target.closest("dialog[data-autoopen]");
    if (!dialog) return;
    var status = evt.detail.xhr.status;
    if (status === 409) { evt.detail.shouldSwap = true; evt.detail.isError = false; }
    if (status >= 200 && status < 300 && target === dialog && dialog.open) dialog.close();
  });
  document.addEventListener("htmx:afterSettle", function () {
    var dialog = document.querySelector("dialog[data-autoopen][open]");
    var problem = dialog && dialog.querySelector("[aria-invalid=true], [role=alert]");
    if (problem && !dialog.contains(document.activeElement)) {
      if (!problem.matches("input, select, textarea")) problem.setAttribute("tabindex", "-1");
      problem.focus();
    }
  });
  window.portalToast = toast;
  // A form marked data-confirm asks before it is sent (destructive actions).
  document.addEventListener("submit", function (evt) {
    var form = evt.target;
    if (form.matches && form.matches("form[data-confirm]") && !window.confirm(form.getAttribute("data-confirm"))) {
      evt.preventDefault();
      evt.stopImmediatePropagation();
    }
  }, true);
})();
