// The read-only diagram of the task page and of a starter's instance page: bpmn-js
// NavigatedViewer with the current task highlighted (task page) or where the instance stands
// (completed elements, compensated ones, waiting tokens, incidents). On a narrow screen the
// diagram would be too small to read when fitted whole, so it zooms in on the current element
// instead; the buttons zoom and fit, also on touch screens.
(function () {
  "use strict";

  const MARKERS = [
    ["completed", "baton-completed"],
    ["compensated", "baton-compensated"],
    ["active", "baton-active"],
    ["failed", "baton-failed"],
    ["current", "baton-current"],
  ];
  const READABLE_SCALE = 0.75;

  function mark(viewer, data) {
    const canvas = viewer.get("canvas");
    const registry = viewer.get("elementRegistry");
    MARKERS.forEach(([key, css]) => {
      const value = data[key] || [];
      const ids = Array.isArray(value) ? value : Object.keys(value);
      ids.forEach((id) => {
        if (registry.get(id)) canvas.addMarker(id, css);
      });
    });
  }

  function focusElement(viewer, data) {
    const registry = viewer.get("elementRegistry");
    const ids = [...(data.current || []), ...(data.failed || []), ...(data.active || [])];
    return ids.map((id) => registry.get(id)).find(Boolean) || null;
  }

  function fit(viewer, data) {
    const canvas = viewer.get("canvas");
    canvas.zoom("fit-viewport", "auto");
    const focus = focusElement(viewer, data);
    if (focus && canvas.zoom() < READABLE_SCALE) {
      canvas.zoom(READABLE_SCALE);
      canvas.scrollToElement(focus, 40);
    }
  }

  function wireButtons(viewer, data, root) {
    const canvas = viewer.get("canvas");
    root.querySelectorAll("[data-diagram-zoom]").forEach((button) => {
      button.addEventListener("click", () => {
        const how = button.getAttribute("data-diagram-zoom");
        if (how === "fit") {
          canvas.zoom("fit-viewport", "auto");
        } else if (how === "focus") {
          fit(viewer, data);
        } else {
          canvas.zoom(canvas.zoom() * (how === "in" ? 1.25 : 0.8));
        }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const container = document.getElementById("work-diagram");
    const source = document.getElementById("work-diagram-data");
    if (!container || !source || !window.BpmnJS) return;
    const data = JSON.parse(source.textContent);
    const viewer = new window.BpmnJS({ container });
    viewer.importXML(data.xml).then(() => {
      mark(viewer, data);
      fit(viewer, data);
      wireButtons(viewer, data, container.closest("section") || document);
      container.setAttribute("data-rendered", "true");
    }).catch((error) => {
      if (/no diagram to display/.test(error.message)) {
        // The file has no layout (BPMN diagram interchange): nothing to draw.
        container.textContent = "This diagram has no layout to draw (it was written without one).";
        container.classList.add("no-layout");
      } else {
        container.textContent = `The diagram cannot be shown: ${error.message}`;
      }
      container.setAttribute("data-rendered", "false");
    });
  });
})();
