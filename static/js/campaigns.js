// Campaign editor: keep open pickers open across htmx swaps, open dialogs, and reorder
// sub-audiences by drag and drop (the Move up / Move down buttons do the same by keyboard).
(function () {
  "use strict";
  let openPickers = [];

  document.body.addEventListener("htmx:beforeSwap", function () {
    openPickers = Array.from(document.querySelectorAll("details[open][id]")).map((d) => d.id);
  });
  document.body.addEventListener("htmx:afterSwap", function () {
    openPickers.forEach((id) => {
      const el = document.getElementById(id);
      if (el) el.open = true;
    });
  });

  // Segment pickers close on Escape and on a click outside them.
  document.addEventListener("click", function (event) {
    document.querySelectorAll("details.cmp-multi[open]").forEach((d) => {
      if (!d.contains(event.target)) d.open = false;
    });
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    document.querySelectorAll("details.cmp-multi[open]").forEach((d) => { d.open = false; });
  });

  function closeModal() {
    const modal = document.getElementById("modal");
    if (modal) modal.innerHTML = "";
  }
  document.body.addEventListener("campaign:close-modal", closeModal);
  document.body.addEventListener("click", function (event) {
    const close = event.target.closest("[data-close-modal]");
    if (close && close.closest("#modal")) {
      event.preventDefault();
      closeModal();
    }
  });
  document.body.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && document.querySelector("#modal dialog")) closeModal();
  });

  let dragged = null;
  document.body.addEventListener("dragstart", function (event) {
    const group = event.target.closest && event.target.closest("#sub-list .cmp-group[draggable=true]");
    if (!group) return;
    dragged = group;
    group.classList.add("cmp-dragging");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", group.dataset.id);
  });
  document.body.addEventListener("dragover", function (event) {
    if (!dragged) return;
    const over = event.target.closest && event.target.closest("#sub-list .cmp-group");
    if (!over || over === dragged) return;
    event.preventDefault();
    const box = over.getBoundingClientRect();
    const after = event.clientY > box.top + box.height / 2;
    over.parentNode.insertBefore(dragged, after ? over.nextSibling : over);
  });
  document.body.addEventListener("drop", function (event) {
    if (dragged) event.preventDefault();
  });
  document.body.addEventListener("dragend", function () {
    if (!dragged) return;
    dragged.classList.remove("cmp-dragging");
    dragged = null;
    const form = document.getElementById("reorder-form");
    if (!form) return;
    form.querySelectorAll("input[name=order]").forEach((el) => el.remove());
    document.querySelectorAll("#sub-list .cmp-group").forEach((group) => {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = "order";
      input.value = group.dataset.id;
      form.appendChild(input);
    });
    htmx.trigger(form, "submit");
  });
})();
