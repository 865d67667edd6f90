// One mechanism for the whole app: every htmx request's error is shown where the person
// is looking.
//
// - A 4xx answer that is a fragment (a form re-rendered with its errors) is swapped into
//   its target, as a 200 would be.
// - Anything else (a full error page, a 5xx, a lost connection, a timeout) is not swapped:
//   its message is shown in an alert right after the element that made the request (at
//   the top of its form when it is in one), and read out by screen readers.
(function () {
  "use strict";

  const FRAGMENT_ERRORS = [400, 403, 409, 413, 422, 429];

  function anchorFor(elt) {
    if (!elt || !elt.isConnected) return document.querySelector("main") || document.body;
    return elt.closest("form") || elt;
  }

  function slotFor(elt) {
    const anchor = anchorFor(elt);
    let slot = anchor.querySelector(":scope > .htmx-error");
    if (!slot && anchor.nextElementSibling && anchor.nextElementSibling.classList.contains("htmx-error")) {
      slot = anchor.nextElementSibling;
    }
    if (!slot) {
      slot = document.createElement("div");
      slot.className = "form-error htmx-error";
      slot.setAttribute("role", "alert");
      if (anchor.tagName === "FORM") anchor.prepend(slot);
      else anchor.insertAdjacentElement("afterend", slot);
    }
    return slot;
  }

  function clearFor(elt) {
    const anchor = anchorFor(elt);
    const inside = anchor.querySelector(":scope > .htmx-error");
    if (inside) inside.remove();
    const after = anchor.nextElementSibling;
    if (after && after.classList.contains("htmx-error")) after.remove();
  }

  function show(elt, text) {
    const slot = slotFor(elt);
    slot.textContent = text;
    slot.hidden = false;
  }

  // The words of an error page: its alert or error list if it has one, else its heading.
  function messageOf(xhr) {
    const status = xhr.status;
    const type = (xhr.getResponseHeader("Content-Type") || "").toLowerCase();
    let text = "";
    if (type.indexOf("text/html") !== -1 && xhr.responseText) {
      const doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
      const picked = doc.querySelector(".form-error, [role=alert], .errorlist, .error-message, main h1, h1");
      text = picked ? picked.textContent.trim().replace(/\s+/g, " ") : "";
    } else if (type.indexOf("application/json") !== -1) {
      try {
        const body = JSON.parse(xhr.responseText);
        text = String(body.error || body.message || body.detail || "");
      } catch (e) {
        text = "";
      }
    } else if (xhr.responseText && xhr.responseText.length < 400) {
      text = xhr.responseText.trim();
    }
    if (text.length > 300) text = text.slice(0, 297) + "…";
    if (status >= 500) {
      return "Something went wrong on our side (error " + status + "); nothing new was saved. " +
        "Try again, and if it keeps happening tell an administrator." + (text ? " " + text : "");
    }
    if (status === 404) return text || "That no longer exists (it may have been deleted). Reload the page.";
    if (status === 403) return text || "You are not allowed to do that.";
    return text || "The request was refused (error " + status + ").";
  }

  function isFullPage(xhr) {
    return /<html[\s>]/i.test((xhr.responseText || "").slice(0, 400));
  }

  document.body.addEventListener("htmx:beforeRequest", function (event) {
    clearFor(event.detail.elt);
  });

  document.body.addEventListener("htmx:beforeSwap", function (event) {
    const xhr = event.detail.xhr;
    if (xhr.status < 400) return;
    if (FRAGMENT_ERRORS.indexOf(xhr.status) !== -1 && xhr.responseText && !isFullPage(xhr)) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
      return;
    }
    event.detail.shouldSwap = false;
    event.detail.isError = false; // shown below instead of htmx's console error
    show(event.detail.requestConfig ? event.detail.requestConfig.elt : event.detail.elt, messageOf(xhr));
  });

  // Keyboard focus survives every swap: the control the person used gets focus back (found
  // by id, else by its name/value or its words inside the nearest element with an id), or
  // else the heading of the section it was in. Without this, focus falls to <body>.
  let focusKey = null;

  function keyFor(el) {
    if (!el || el === document.body || el === document.documentElement) return null;
    const scopeEl = el.parentElement ? el.parentElement.closest("[id]") : null;
    let selector = el.tagName.toLowerCase();
    if (el.name) selector += '[name="' + CSS.escape(el.name) + '"]';
    if ((el.type === "checkbox" || el.type === "radio") && el.value) {
      selector += '[value="' + CSS.escape(el.value) + '"]';
    }
    const scope = scopeEl ? scopeEl.id : null;
    const peers = scopeEl ? Array.from(scopeEl.querySelectorAll(selector)) : [];
    const section = el.closest("section[id]");
    return {
      id: el.id || null, scope: scope, selector: selector, index: peers.indexOf(el),
      text: (el.textContent || "").trim(), section: section ? section.id : null,
    };
  }

  function find(key) {
    if (key.id) {
      const byId = document.getElementById(key.id);
      if (byId) return byId;
    }
    const scopeEl = key.scope ? document.getElementById(key.scope) : null;
    if (scopeEl) {
      const peers = Array.from(scopeEl.querySelectorAll(key.selector));
      const sameWords = peers.filter((p) => (p.textContent || "").trim() === key.text);
      if (key.text && sameWords.length === 1) return sameWords[0];
      if (key.index >= 0 && peers[key.index]) return peers[key.index];
    }
    const section = key.section ? document.getElementById(key.section) : null;
    const heading = section ? section.querySelector("h2, h1") : null;
    if (heading) {
      heading.setAttribute("tabindex", "-1");
      return heading;
    }
    return null;
  }

  // The last control focused: a request may disable its form (hx-disabled-elt), which
  // drops focus to <body> before the answer is swapped in.
  let lastFocused = null;
  document.addEventListener("focusin", function (event) {
    lastFocused = event.target;
  });

  document.body.addEventListener("htmx:beforeSwap", function (event) {
    let active = document.activeElement;
    if (!active || active === document.body) active = lastFocused;
    const target = event.detail.target;
    focusKey = target && active && target.contains(active) ? keyFor(active) : null;
  });
  document.body.addEventListener("htmx:afterSettle", function () {
    const key = focusKey;
    focusKey = null;
    if (!key) return;
    const active = document.activeElement;
    if (active && active !== document.body && active.isConnected) return; // htmx kept it
    const el = find(key);
    if (el && !el.disabled) el.focus({ preventScroll: false });
  });

  // Searchable multi-selects (Tom Select, vendored): every <select multiple data-searchable>
  // on the page and in what htmx swaps in. The <select> stays the form's field: Tom Select
  // keeps it in sync and fires its input/change events, so forms and htmx work unchanged.
  function enhance(root) {
    if (typeof window.TomSelect === "undefined") return;
    root.querySelectorAll("select[multiple][data-searchable]").forEach(function (select) {
      if (select.tomselect) return;
      new window.TomSelect(select, {
        plugins: ["remove_button", "checkbox_options"],
        placeholder: select.dataset.placeholder || "Type to search…",
        hidePlaceholder: false,
        closeAfterSelect: false,
        maxOptions: null,
      });
    });
  }
  htmx.onLoad(enhance);

  document.body.addEventListener("htmx:sendError", function (event) {
    show(event.detail.elt, "The server could not be reached; nothing was saved. Check your connection and try again.");
  });
  document.body.addEventListener("htmx:timeout", function (event) {
    show(event.detail.elt, "The server took too long to answer. Try again in a moment.");
  });
})();
