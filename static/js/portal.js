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
  // The Content-Security-Policy allows no inline script, and htmx runs hx-on handlers and hx-trigger
  // filters ("event[expression]") as script, so the few behaviours that needed them live here.

  // An event about one account is sent again under a name of its own ("account-status-changed-12"),
  // so each part of the page listens for its own account without a filter.
  document.addEventListener("account-status-changed", function (evt) {
    if (evt.detail && evt.detail.id != null) {
      htmx.trigger(document.body, "account-status-changed-" + evt.detail.id, evt.detail);
    }
  });
  // A form marked data-fields-changed-except sends "fields-changed" when any of its fields changes,
  // except the one named (the search box, which sends its own requests as it is typed in).
  document.addEventListener("change", function (evt) {
    var form = evt.target.form;
    if (!form || !form.hasAttribute("data-fields-changed-except")) return;
    if (evt.target.id === form.getAttribute("data-fields-changed-except")) return;
    htmx.trigger(form, "fields-changed");
  });
  // A checkbox marked data-select-all="<selector>" ticks or clears every checkbox the selector finds.
  document.addEventListener("change", function (evt) {
    var selector = evt.target.getAttribute && evt.target.getAttribute("data-select-all");
    if (!selector) return;
    document.querySelectorAll(selector).forEach(function (box) { box.checked = evt.target.checked; });
  });
  // The account list: how many rows are ticked, said while ticking ("3 selected").
  function countTicked() {
    var out = document.getElementById("selected-count");
    if (!out) return;
    var n = document.querySelectorAll("input.row-select:checked").length;
    out.textContent = n ? n.toLocaleString("en-US") + " selected" : "";
  }
  document.addEventListener("change", function (evt) {
    if (evt.target.matches && evt.target.matches("input.row-select, [data-select-all]")) countTicked();
  });
  // A field's problem message (p[data-problem-for], swapped in by a live filter's answer) marks its field
  // as the full page does: aria-invalid, and the message among what describes it.
  function markFields(root) {
    (root || document).querySelectorAll("p[data-problem-for]").forEach(function (msg) {
      var field = document.getElementById(msg.getAttribute("data-problem-for"));
      if (!field) return;
      var ids = (field.getAttribute("aria-describedby") || "").split(/\s+/).filter(function (id) {
        return id && id !== msg.id;
      });
      if (msg.hidden) {
        field.removeAttribute("aria-invalid");
      } else {
        field.setAttribute("aria-invalid", "true");
        ids.push(msg.id);
      }
      if (ids.length) field.setAttribute("aria-describedby", ids.join(" "));
      else field.removeAttribute("aria-describedby");
    });
  }
  document.addEventListener("htmx:oobAfterSwap", function () { markFields(document); });
  document.addEventListener("htmx:afterSettle", function () { countTicked(); });
  // Progress bars carry their value in aria-valuenow; the fill is drawn from it (a style attribute
  // would need 'unsafe-inline' in the CSP; setting the style from script does not).
  function drawProgress(root) {
    root.querySelectorAll("[role=progressbar][aria-valuenow] > span").forEach(function (fill) {
      fill.style.width = Math.max(0, Math.min(100, Number(fill.parentNode.getAttribute("aria-valuenow")) || 0)) + "%";
    });
  }
  drawProgress(document);
  document.addEventListener("htmx:load", function (evt) { drawProgress(evt.detail.elt.parentNode || document); });
  // Back and forward reload the account list from the server (hx-history="false" on its form: a
  // snapshot would pair the filters typed since with the old results). Quick presses of Back race;
  // only the last one may swap.
  var restoring = null;
  document.addEventListener("htmx:historyCacheMiss", function (evt) {
    if (restoring) restoring.abort();
    restoring = evt.detail.xhr;
  });
  // A form marked data-confirm asks before it is sent (destructive actions).
  document.addEventListener("submit", function (evt) {
    var form = evt.target;
    if (form.matches && form.matches("form[data-confirm]") && !window.confirm(form.getAttribute("data-confirm"))) {
      evt.preventDefault();
      evt.stopImmediatePropagation();
    }
  }, true);
  // The cancel dialog's button says what it will do ("Write off 2 invoices, $120.00, and cancel") as
  // invoices are ticked; the server checks again and writes off only what was ticked.
  document.addEventListener("change", function (evt) {
    if (!evt.target.matches || !evt.target.matches(".write-off-choice")) return;
    var form = evt.target.form, button = form && form.querySelector("#cancel-submit");
    if (!button) return;
    var chosen = form.querySelectorAll(".write-off-choice:checked"), cents = 0;
    chosen.forEach(function (box) { cents += Number(box.getAttribute("data-owed-cents")) || 0; });
    var money = "$" + (cents / 100).toLocaleString("en-US", {minimumFractionDigits: 2, maximumFractionDigits: 2});
    button.textContent = chosen.length ? "Write off " + chosen.length + " invoice" + (chosen.length === 1 ? "" : "s") +
      ", " + money + ", and cancel" : "Cancel account";
  });
})();
// Phones (issue 16): a wide table scrolls inside its own box, never the page. Each .table not already in one is
// put inside a .table-scroll region that keyboard users can focus and scroll, named by the table's caption or
// its section's heading; htmx's new content gets the same.
(function () {
  function labelFor(table) {
    var caption = table.querySelector("caption");
    var section = table.closest("section, .card, dialog, main");
    var heading = section && section.querySelector("h1, h2, h3");
    var text = (caption && caption.textContent) || (heading && heading.textContent) || "Table";
    return text.replace(/\s+/g, " ").trim() + " (scrolls sideways)";
  }
  function wrapTables(root) {
    if (!root || !root.querySelectorAll) return;
    var tables = Array.prototype.slice.call(root.querySelectorAll("table.table"));
    if (root.matches && root.matches("table.table")) tables.push(root);
    tables.forEach(function (table) {
      var parent = table.parentNode;
      if (!parent || (parent.classList && parent.classList.contains("table-scroll"))) return;
      var box = document.createElement("div");
      box.className = "table-scroll";
      parent.insertBefore(box, table);
      box.appendChild(table);
    });
    root.querySelectorAll(".table-scroll:not([tabindex]), .table-scroll[data-scroll-managed]").forEach(fit);
  }
  // A box is a focusable, named region only while its table is wider than it (the account list's cards on a
  // phone never are): a region that does not scroll would be one more tab stop saying it scrolls sideways.
  // Each box is measured again whenever its size changes (a folded <details> opened, a window resized).
  var watcher = window.ResizeObserver ? new ResizeObserver(function (entries) {
    entries.forEach(function (entry) { fit(entry.target); });
  }) : null;
  function fit(box) {
    var scrolls = box.scrollWidth > box.clientWidth + 1;
    if (!box.hasAttribute("data-scroll-managed") && watcher) watcher.observe(box);
    box.setAttribute("data-scroll-managed", "");
    if (scrolls && !box.hasAttribute("tabindex")) {
      var table = box.querySelector("table");
      box.setAttribute("role", "region");
      box.setAttribute("tabindex", "0");
      if (!box.hasAttribute("aria-label") && !box.hasAttribute("aria-labelledby")) {
        box.setAttribute("aria-label", table ? labelFor(table) : "Scrolls sideways");
      }
    } else if (!scrolls && box.hasAttribute("tabindex")) {
      ["role", "tabindex", "aria-label"].forEach(function (name) { box.removeAttribute(name); });
    }
  }
  wrapTables(document);
  document.addEventListener("htmx:load", function (evt) { wrapTables(evt.detail.elt.parentNode || document); });
  var refit = null;
  if (!watcher) window.addEventListener("resize", function () {
    if (refit) return;
    refit = window.requestAnimationFrame(function () {
      refit = null;
      document.querySelectorAll(".table-scroll[data-scroll-managed]").forEach(fit);
    });
  });
  // Where ::details-content cannot be styled the header's menu is opened on a wide screen instead.
  var menu = document.querySelector("[data-nav-menu]");
  var supported = window.CSS && CSS.supports && CSS.supports("selector(::details-content)");
  if (menu && !supported && window.matchMedia) {
    var wide = window.matchMedia("(min-width: 60.01rem)");
    var follow = function () { menu.open = wide.matches; };
    follow();
    if (wide.addEventListener) wide.addEventListener("change", follow);
  }
})();
// Schedule form (issue 16): only the fields of the kind chosen (monthly or cron) can be typed in; the others are
// disabled, as the server renders them, and switch as the choice changes (then the live preview asks again).
(function () {
  document.addEventListener("change", function (evt) {
    var radio = evt.target;
    if (!radio.matches || !radio.matches("form[data-schedule-form] input[name=mode]")) return;
    radio.form.querySelectorAll("[data-schedule-mode]").forEach(function (group) {
      var off = group.getAttribute("data-schedule-mode") !== radio.value;
      group.querySelectorAll("input, select, textarea").forEach(function (field) { field.disabled = off; });
    });
  }, true);
})();
// A form sent after its token expired (issue 16, portal/web/form_expiry.py): the answer carries a fresh token; every
// form on the page and htmx's header take it, so what was typed, still on the page, can be sent again as it is.
document.addEventListener("form-token-refreshed", function (evt) {
  var token = evt.detail && evt.detail.token;
  if (!token) return;
  document.querySelectorAll("input[name=csrf_token]").forEach(function (input) { input.value = token; });
  var headers = {};
  try { headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}"); } catch (e) { /* start afresh */ }
  headers["X-CSRFToken"] = token;
  document.body.setAttribute("hx-headers", JSON.stringify(headers));
});
