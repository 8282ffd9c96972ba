// Keyboard shortcuts: a key activates the element whose data-key names it
// (1/2/3 decide, n focuses the note, s starts reviewing, q goes back to the queue).
// Keys typed into a field stay in the field; Escape leaves it.
"use strict";
document.addEventListener("keydown", function (event) {
  if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
  var target = event.target;
  if (target && /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName)) {
    if (event.key === "Escape") target.blur();
    return;
  }
  var element = document.querySelector('[data-key="' + CSS.escape(event.key) + '"]');
  if (!element) return;
  event.preventDefault();
  if (element.tagName === "TEXTAREA" || element.tagName === "INPUT") element.focus();
  else element.click();
});
