// The read-only diagram on /processes/<key>/: bpmn-js NavigatedViewer (pan and zoom), with the
// elements added or changed since the compared version marked.
(function () {
  'use strict';
  var config = JSON.parse(document.getElementById('viewer-config').textContent);
  var status = document.getElementById('diagram-status');
  var viewer = new window.BpmnJS({ container: '#diagram' });

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
    document.getElementById('diagram').setAttribute('data-rendered', 'true');
  }).catch(function (error) {
    status.textContent = 'The diagram cannot be shown: ' + error.message;
  });
})();
