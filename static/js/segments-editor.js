// The segment condition editor: serialize the inputs of each .seg-editor into its hidden
// JSON field, and announce changes so the insights panel refreshes (debounced by htmx).
(function () {
  "use strict";

  function setPath(obj, key, value) {
    const parts = key.split(".");
    let node = obj;
    for (let i = 0; i < parts.length - 1; i++) {
      if (typeof node[parts[i]] !== "object" || node[parts[i]] === null) node[parts[i]] = {};
      node = node[parts[i]];
    }
    node[parts[parts.length - 1]] = value;
  }

  function readValue(el) {
    if (el.multiple) return Array.from(el.selectedOptions).map((o) => o.value);
    if (el.hasAttribute("data-list")) {
      return el.value.split(/[,\n]/).map((s) => s.trim()).filter(Boolean);
    }
    return el.value;
  }

  function dateValue(cond, key) {
    const mode = cond["_" + key + "_mode"];
    if (mode === undefined) return;
    if (mode === "ago") cond[key] = { ago: cond["_" + key + "_ago"], unit: cond["_" + key + "_unit"] };
    else cond[key] = cond["_" + key + "_date"];
  }

  function readCondition(row) {
    const cond = { type: row.dataset.type };
    row.querySelectorAll("[data-key]").forEach((el) => {
      if (el.closest(".seg-cond") === row) setPath(cond, el.dataset.key, readValue(el));
    });
    dateValue(cond, "value");
    dateValue(cond, "value2");
    Object.keys(cond).forEach((k) => { if (k.startsWith("_")) delete cond[k]; });
    if (cond.window !== undefined) {
      if (!cond.window.kind) cond.window = null;
      else if (cond.window.kind === "last") { delete cond.window.start; delete cond.window.end; }
      else { delete cond.window.amount; delete cond.window.unit; }
    }
    return cond;
  }

  function serialize(editor) {
    const top = editor.querySelector("[data-role=combinator-top]");
    const definition = {
      version: 1,
      combinator: top ? top.value : "and",
      sections: [],
      exclusions: { combinator: "or", conditions: [] },
    };
    editor.querySelectorAll(".seg-group").forEach((group) => {
      const combinator = group.querySelector("[data-role=combinator]");
      const entry = { combinator: combinator ? combinator.value : "and", conditions: [] };
      group.querySelectorAll(".seg-cond").forEach((row) => entry.conditions.push(readCondition(row)));
      if (group.hasAttribute("data-exclusions")) definition.exclusions = entry;
      else definition.sections.push(entry);
    });
    const json = JSON.stringify(definition);
    const field = editor.querySelector("[data-role=definition]");
    if (field) field.value = json;
    return json;
  }

  function onEdit(event) {
    const editor = event.target.closest(".seg-editor");
    if (!editor) return;
    serialize(editor);
    document.body.dispatchEvent(new CustomEvent("segments:changed", { detail: { editor: editor.id } }));
  }

  document.addEventListener("input", onEdit);
  document.addEventListener("change", onEdit);
  // Whatever htmx sends from (or for) an editor carries its current definition.
  document.addEventListener("htmx:configRequest", (event) => {
    const elt = event.detail.elt;
    let editor = elt.closest ? elt.closest(".seg-editor") : null;
    if (!editor && elt.dataset && elt.dataset.editor) editor = document.getElementById(elt.dataset.editor);
    if (editor) event.detail.parameters[editor.dataset.field] = serialize(editor);
  });

  // While a condition is incomplete or needs fixing, the insights answer carries
  // <template data-keep-previous>: the counts already on screen stay, marked as such.
  document.body.addEventListener("htmx:beforeSwap", (event) => {
    const target = event.detail.target;
    const body = event.detail.serverResponse || "";
    if (!target || body.indexOf("data-keep-previous") === -1) return;
    const previous = target.querySelector("[data-counts]");
    if (!previous) return;
    const kept = previous.cloneNode(true);
    kept.classList.add("seg-stale");
    kept.setAttribute("title", "Counts of the last complete conditions");
    event.detail.serverResponse = body.replace(
      /<template data-keep-previous><\/template>/,
      kept.outerHTML
    );
  });

  window.segmentsEditor = { serialize: serialize };
})();
