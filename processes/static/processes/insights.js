// The insights heatmap: bpmn-js NavigatedViewer with each element coloured by the chosen
// metric (runs, mean or p95 duration, incident rate) relative to the hottest element, and a
// label with its value. Clicking an element lists its slowest runs (?element=<id>).
(function () {
  'use strict';
  var config = JSON.parse(document.getElementById('insights-config').textContent);
  var container = document.getElementById('insight-diagram');
  var status = document.getElementById('diagram-status');
  var viewer = new window.BpmnJS({ container: container });
  var LEVELS = 5;

  function paint(metric) {
    var canvas = viewer.get('canvas');
    var overlays = viewer.get('overlays');
    var registry = viewer.get('elementRegistry');
    overlays.remove({ type: 'heat' });
    var ids = Object.keys(config.heat).filter(function (id) { return registry.get(id); });
    var top = 0;
    ids.forEach(function (id) { top = Math.max(top, config.heat[id][metric] || 0); });
    ids.forEach(function (id) {
      for (var level = 0; level <= LEVELS; level++) { canvas.removeMarker(id, 'heat-' + level); }
      var value = config.heat[id][metric] || 0;
      var level = top > 0 ? Math.round((value / top) * LEVELS) : 0;
      canvas.addMarker(id, 'heat-' + level);
      var badge = document.createElement('span');
      badge.className = 'heat-label heat-label-' + level;
      badge.textContent = config.heat[id].label[metric];
      overlays.add(id, 'heat', { position: { bottom: 4, right: 4 }, html: badge });
    });
    container.setAttribute('data-metric', metric);
  }

  viewer.importXML(config.xml).then(function () {
    viewer.get('canvas').zoom('fit-viewport', 'auto');
    paint('runs');
    document.querySelectorAll('.heat-switch button').forEach(function (button) {
      button.addEventListener('click', function () {
        document.querySelectorAll('.heat-switch button').forEach(function (other) {
          other.setAttribute('aria-pressed', String(other === button));
        });
        paint(button.getAttribute('data-metric'));
      });
    });
    viewer.get('eventBus').on('element.click', function (event) {
      if (!config.heat[event.element.id]) { return; }
      var params = new URLSearchParams(window.location.search);
      params.set('element', event.element.id);
      window.location.search = params.toString();
    });
    container.setAttribute('data-rendered', 'true');
  }).catch(function (error) {
    status.textContent = 'The diagram cannot be shown: ' + error.message;
  });
})();
