/* SegmentLens: what Dash 4's and dash-bootstrap-components' markup leaves out for assistive technology
   (issue 16, WCAG 2.1 AA), filled in on the page as components appear. Neither library lets a layout set
   aria-* attributes on these elements, so it is done here, once, for every page:
   - dcc.Dropdown keeps a focusable, aria-hidden "focus target" input in the tab order that forwards focus to
     its real button: the button itself takes the tab stop instead (same keyboard behaviour, nothing hidden
     is focusable);
   - dcc.RangeSlider's number boxes, dcc.Upload's file input and dbc.Progress's bar get names;
   - an input with a Bootstrap feedback or help text beside it is tied to it (aria-describedby), and marked
     aria-invalid while it shows an error. */
(function () {
  "use strict";

  function text(el) {
    return el ? (el.textContent || "").replace(/\s+/g, " ").trim() : "";
  }

  function labelFor(el) {
    // The <label for=...> of the component (or of its nearest ancestor with an id).
    for (let node = el; node && node !== document.body; node = node.parentElement) {
      if (node.id) {
        const label = document.querySelector('label[for="' + CSS.escape(node.id) + '"]');
        if (label) return text(label);
      }
    }
    return "";
  }

  function dropdowns(root) {
    root.querySelectorAll(".dash-dropdown-focus-target").forEach(function (proxy) {
      if (proxy.getAttribute("tabindex") !== "-1") proxy.setAttribute("tabindex", "-1");
      const button = proxy.nextElementSibling;
      if (button && button.tagName === "BUTTON" && !button.disabled && button.getAttribute("tabindex") !== "0") {
        button.setAttribute("tabindex", "0");
      }
    });
  }

  function sliders(root) {
    root.querySelectorAll("input.dash-range-slider-input:not([aria-label])").forEach(function (input) {
      const name = labelFor(input) || "Range";
      const end = input.classList.contains("dash-range-slider-max-input") ? "to" :
        (input.classList.contains("dash-range-slider-min-input") ? "from" : "value");
      input.setAttribute("aria-label", name + ", " + end);
    });
  }

  function uploads(root) {
    root.querySelectorAll('input[type="file"]:not([aria-label])').forEach(function (input) {
      const zone = input.parentElement;
      input.setAttribute("aria-label", text(zone) || labelFor(input) || "Choose a file");
    });
  }

  function progressBars(root) {
    root.querySelectorAll('[role="progressbar"]:not([aria-label])').forEach(function (bar) {
      bar.setAttribute("aria-label", labelFor(bar) || "Progress");
    });
  }

  let counter = 0;
  function describedBy(root) {
    root.querySelectorAll("input.form-control, select.form-select, textarea.form-control").forEach(function (input) {
      const box = input.closest(".input-group") ? input.closest(".input-group").parentElement : input.parentElement;
      if (!box) return;
      const notes = Array.from(box.querySelectorAll(".invalid-feedback, .form-text"));
      const ids = notes.map(function (note) {
        if (!note.id) note.id = "segmentlens-note-" + (++counter);
        return note.id;
      }).join(" ");
      if (ids && input.getAttribute("aria-describedby") !== ids) input.setAttribute("aria-describedby", ids);
      const invalid = input.classList.contains("is-invalid") ? "true" : null;
      if (invalid && input.getAttribute("aria-invalid") !== "true") input.setAttribute("aria-invalid", "true");
      if (!invalid && input.hasAttribute("aria-invalid")) input.removeAttribute("aria-invalid");
    });
  }

  function fix() {
    scheduled = false;
    const root = document.body;
    if (!root) return;
    dropdowns(root);
    sliders(root);
    uploads(root);
    progressBars(root);
    describedBy(root);
  }

  let scheduled = false;
  function schedule() {
    if (!scheduled) {
      scheduled = true;
      window.requestAnimationFrame(fix);
    }
  }

  function start() {
    fix();
    new MutationObserver(schedule).observe(document.body, {
      childList: true, subtree: true, attributes: true, attributeFilter: ["tabindex", "class", "disabled"],
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
