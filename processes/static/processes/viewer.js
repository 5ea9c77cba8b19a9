// The read-only diagram on /processes/<key>/: bpmn-js NavigatedViewer (pan and zoom), with the
// elements added or changed since the compared version marked, and the "Test coverage"
// overlay (covered elements and flows highlighted, the others dimmed) when a report is stored.
(function () {
  'use strict';
  var config = JSON.parse(document.getElementById('viewer-config').textContent);
  var status = document.getElementById('diagram-status');
  var viewer = new window.BpmnJS({ container: '#diagram' });

  function coverageToggle(canvas, registry) {
    var button = document.getElementById('coverage-toggle');
    if (!button || !config.coverage) { return; }
    var marks = [['covered', 'coverage-hit'], ['uncovered', 'coverage-miss']];
    button.addEventListener('click', function () {
      var on = button.getAttribute('aria-pressed') !== 'true';
      marks.forEach(function (pair) {
        (config.coverage[pair[0]] || []).forEach(function (id) {
          if (!registry.get(id)) { return; }
          if (on) { canvas.addMarker(id, pair[1]); } else { canvas.removeMarker(id, pair[1]); }
        });
      });
      button.setAttribute('aria-pressed', String(on));
      document.querySelector('.coverage-legend').hidden = !on;
      document.getElementById('diagram').setAttribute('data-coverage', on ? 'shown' : 'hidden');
    });
  }

  viewer.importXML(config.xml).then(function () {
    var canvas = viewer.get('canvas');
    var registry = viewer.get('elementRegistry');
    canvas.zoom('fit-viewport', 'auto');
    [['added', 'baton-added'], ['changed', 'baton-changed']].forEach(function (pair) {
      (config.marks[pair[0]] || []).forEach(function (id) {
        if (registry.get(id)) {
          canvas.addMarker(id, pair[1]);
        }
      });
    });
    coverageToggle(canvas, registry);
    document.getElementById('diagram').setAttribute('data-rendered', 'true');
  }).catch(function (error) {
    status.textContent = 'The diagram cannot be shown: ' + error.message;
  });
})();
