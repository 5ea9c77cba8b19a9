// The admin's instance diagram: bpmn-js NavigatedViewer with Baton's markers (completed
// elements with how often they ran, waiting tokens, incidents, compensated activities (their
// compensation handler started: a booking undone by a cancel), and for a multi-instance
// activity still running how many of its instances are active, "2 of 3"). Clicking a
// completed element picks it in the "Reset to" list.
(function () {
  "use strict";

  function mark(viewer, data) {
    const canvas = viewer.get("canvas");
    const overlays = viewer.get("overlays");
    const registry = viewer.get("elementRegistry");
    const known = (id) => Boolean(registry.get(id));
    Object.entries(data.completed || {}).forEach(([id, count]) => {
      if (!known(id)) return;
      canvas.addMarker(id, "baton-completed");
      overlays.add(id, "baton", {
        position: { bottom: 8, right: 8 },
        html: `<span class="baton-run-count" title="completed ${count} time(s)">${count}</span>`,
      });
    });
    (data.active || []).forEach((id) => {
      if (!known(id)) return;
      canvas.addMarker(id, "baton-active");
      overlays.add(id, "baton", {
        position: { top: -12, left: -12 },
        html: '<span class="baton-token" title="a token waits here">●</span>',
      });
    });
    Object.entries(data.instances || {}).forEach(([id, counts]) => {
      if (!known(id)) return;
      const span = document.createElement("span");
      span.className = "baton-instances";
      span.title = `${counts.active} of ${counts.total} instances active, ${counts.completed} completed`;
      span.textContent = `${counts.active} of ${counts.total}`;
      overlays.add(id, "baton", { position: { bottom: 8, left: 4 }, html: span });
    });
    (data.compensated || []).forEach((id) => {
      if (!known(id)) return;
      canvas.addMarker(id, "baton-compensated");
      overlays.add(id, "baton", {
        position: { top: -12, left: 12 },
        html: '<span class="baton-compensated-badge" title="compensated: its compensation handler ran">↺</span>',
      });
    });
    (data.failed || []).forEach((id) => {
      if (!known(id)) return;
      canvas.addMarker(id, "baton-failed");
      overlays.add(id, "baton", {
        position: { top: -12, right: 12 },
        html: '<span class="baton-incident-badge" title="incident">!</span>',
      });
    });
  }

  function pickOnClick(viewer) {
    const select = document.querySelector('select[name="element_id"]');
    if (!select) return;
    viewer.get("eventBus").on("element.click", (event) => {
      const option = Array.from(select.options).find((o) => o.value === event.element.id);
      if (option) {
        select.value = option.value;
        select.focus();
      }
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const container = document.getElementById("baton-diagram");
    const source = document.getElementById("baton-diagram-data");
    if (!container || !source || !window.BpmnJS) return;
    const data = JSON.parse(source.textContent);
    const viewer = new window.BpmnJS({ container });
    viewer.importXML(data.xml).then(() => {
      viewer.get("canvas").zoom("fit-viewport");
      mark(viewer, data);
      pickOnClick(viewer);
      container.dataset.ready = "true";
    }).catch((error) => {
      container.textContent = `The diagram could not be shown: ${error.message}`;
    });
  });
})();
