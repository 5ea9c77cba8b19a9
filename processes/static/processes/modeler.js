// The modeler page (/processes/new/, /processes/<key>/edit/): bpmn-js with the properties
// panel (window.BatonModeler, built from frontend/), saving = validating and deploying through
// the save endpoint, validation errors drawn on the diagram, upload, download, undo/redo,
// zoom, and a warning before leaving with unsaved changes.
(function () {
  'use strict';

  var config = JSON.parse(document.getElementById('modeler-config').textContent);
  var $ = function (id) { return document.getElementById(id); };
  var statusBox = $('modeler-status');
  var problemsBox = $('problems');
  var problemList = $('problem-list');
  var saveButton = $('save-button');

  var modeler = window.BatonModeler.createModeler({
    container: '#canvas',
    propertiesParent: '#properties',
    connectors: config.connectors,
    connections: config.connections
  });
  var canvas = modeler.get('canvas');
  var commandStack = modeler.get('commandStack');
  var elementRegistry = modeler.get('elementRegistry');
  var overlays = modeler.get('overlays');
  var selection = modeler.get('selection');

  var fileName = config.fileName;
  // The text of a file opened with "Upload .bpmn", sent as it is while the diagram is
  // unchanged since, so that problems name the lines of that file (bpmn-js rewrites them).
  var uploadedXml = null;
  var dirty = false;
  var saving = false;
  var markedElements = [];

  // --- status line and unsaved changes -------------------------------------------------

  function showStatus(kind, text, links) {
    statusBox.className = 'modeler-status ' + (kind || '');
    statusBox.textContent = text;
    (links || []).forEach(function (link) {
      var anchor = document.createElement('a');
      anchor.href = link.href;
      anchor.textContent = link.text;
      statusBox.appendChild(document.createTextNode(' '));
      statusBox.appendChild(anchor);
    });
  }

  function setDirty(value) {
    dirty = value;
    $('dirty-flag').hidden = !value;
  }

  window.addEventListener('beforeunload', function (event) {
    if (dirty) {
      event.preventDefault();
      event.returnValue = '';
    }
  });

  modeler.on('commandStack.changed', function (event) {
    $('undo-button').disabled = !commandStack.canUndo();
    $('redo-button').disabled = !commandStack.canRedo();
    if (event.trigger !== 'clear') {
      setDirty(true);
      uploadedXml = null;
    }
  });

  // --- problems on the diagram ---------------------------------------------------------

  function clearProblems() {
    overlays.remove({ type: 'baton-error' });
    markedElements.forEach(function (id) {
      if (elementRegistry.get(id)) {
        canvas.removeMarker(id, 'baton-error');
      }
    });
    markedElements = [];
    problemList.textContent = '';
    problemsBox.hidden = true;
  }

  // The element a problem is about, when it is drawn on the canvas (not the process itself).
  function drawnElement(problem) {
    var element = problem.element_id && elementRegistry.get(problem.element_id);
    return element && element.parent ? element : null;
  }

  function elementLabel(element) {
    var businessObject = element.businessObject || {};
    return businessObject.name ? businessObject.name + ' (' + element.id + ')' : element.id;
  }

  function focusElement(element) {
    selection.select(element);
    if (canvas.scrollToElement) {
      canvas.scrollToElement(element);
    }
  }

  function showProblems(problems) {
    clearProblems();
    var byElement = {};
    problems.forEach(function (problem) {
      var element = drawnElement(problem);
      var item = document.createElement('li');
      var where = element ? elementLabel(element) : (problem.element_name
        ? problem.element_name + ' (' + problem.element_id + ')' : (problem.element_id || ''));
      if (problem.line) {
        where += (where ? ', ' : '') + 'line ' + problem.line + ' of ' + (problem.file || fileName);
      }
      if (element) {
        var button = document.createElement('button');
        button.type = 'button';
        button.className = 'link';
        button.textContent = where;
        button.addEventListener('click', function () { focusElement(element); });
        item.appendChild(button);
        item.appendChild(document.createTextNode(': '));
        (byElement[element.id] = byElement[element.id] || []).push(problem.message);
      } else if (where) {
        item.appendChild(document.createTextNode(where + ': '));
      }
      item.appendChild(document.createTextNode(problem.message));
      item.setAttribute('data-element-id', problem.element_id || '');
      problemList.appendChild(item);
    });
    Object.keys(byElement).forEach(function (id) {
      var note = document.createElement('div');
      note.className = 'baton-error-overlay';
      note.setAttribute('data-element-id', id);
      byElement[id].forEach(function (message) {
        var line = document.createElement('div');
        line.textContent = message;
        note.appendChild(line);
      });
      canvas.addMarker(id, 'baton-error');
      markedElements.push(id);
      overlays.add(id, 'baton-error', { position: { bottom: -6, left: 0 }, html: note });
    });
    problemsBox.hidden = false;
  }

  // --- loading, saving, files ----------------------------------------------------------

  function processIdOf() {
    var definitions = modeler.getDefinitions();
    var process = (definitions && definitions.rootElements || []).find(function (element) {
      return element.$type === 'bpmn:Process';
    });
    return process ? process.id : null;
  }

  function importDiagram(xml) {
    clearProblems();
    return modeler.importXML(xml).then(function (result) {
      canvas.zoom('fit-viewport', 'auto');
      if (result.warnings && result.warnings.length) {
        showStatus('warning', 'The diagram was opened with ' + result.warnings.length +
          ' warning(s): ' + result.warnings.map(function (w) { return w.message; }).join('; '));
      }
      return result;
    });
  }

  function describeFailure(response, body) {
    if (body && body.detail) {
      return body.detail;
    }
    if (response.status === 403) {
      return 'The server refused the request (your session may have expired: reload the page).';
    }
    return 'Saving failed (HTTP ' + response.status + ').';
  }

  function save() {
    if (saving) {
      return;
    }
    if (!dirty && !config.isNew) {
      showStatus('', 'Nothing to save: the diagram has not changed since it was opened or saved.');
      return;
    }
    saving = true;
    saveButton.disabled = true;
    showStatus('', 'Validating and deploying…');
    modeler.saveXML({ format: true }).then(function (result) {
      var xml = uploadedXml !== null ? uploadedXml : result.xml;
      return fetch(config.saveUrl, {
        method: 'POST',
        credentials: 'same-origin',
        headers: {
          'Content-Type': 'application/json',
          'Accept': 'application/json',
          'X-CSRFToken': csrfToken()
        },
        body: JSON.stringify({ xml: xml, file_name: fileName })
      });
    }).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (body) {
        if (response.ok && body) {
          saved(body);
        } else if (response.status === 400 && body && body.errors) {
          showStatus('error', 'Not deployed: ' + body.errors.length +
            ' problem(s), shown on the diagram and below. Nothing was saved.');
          showProblems(body.errors);
        } else {
          showStatus('error', describeFailure(response, body));
        }
      });
    }).catch(function (error) {
      showStatus('error', 'Saving failed: ' + error.message);
    }).then(function () {
      saving = false;
      saveButton.disabled = false;
    });
  }

  function saved(body) {
    clearProblems();
    setDirty(false);
    var first = body.definitions[0];
    var links = [];
    if (first) {
      links.push({ href: first.url, text: 'Open ' + first.name });
      links.push({ href: first.start_url, text: 'Start it' });
      if (config.isNew || window.location.pathname !== first.edit_url) {
        // Reloading the page now opens what was just deployed.
        window.history.replaceState(null, '', first.edit_url);
        config.isNew = false;
        $('modeler-title').textContent = 'Edit “' + first.name + '”';
      }
      $('modeler-subtitle').textContent = 'Version ' + first.version +
        ' is deployed; saving again deploys the next version.';
    }
    showStatus(body.created ? 'success' : '', body.message, links);
  }

  function csrfToken() {
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (match) {
      return decodeURIComponent(match[1]);
    }
    var headers = document.body.getAttribute('hx-headers');
    return headers ? JSON.parse(headers)['X-CSRFToken'] : '';
  }

  function download() {
    modeler.saveXML({ format: true }).then(function (result) {
      var blob = new Blob([result.xml], { type: 'application/xml' });
      var anchor = document.createElement('a');
      var processId = processIdOf();
      anchor.href = URL.createObjectURL(blob);
      anchor.download = (processId && fileName === 'diagram.bpmn') ? processId + '.bpmn' : fileName;
      document.body.appendChild(anchor);
      anchor.click();
      anchor.remove();
      setTimeout(function () { URL.revokeObjectURL(anchor.href); }, 1000);
    }).catch(function (error) {
      showStatus('error', 'The diagram cannot be exported: ' + error.message);
    });
  }

  // The uploaded file's own name, made safe for the server (letters, digits, ".", "-", "_").
  function safeFileName(name) {
    var stem = name.replace(/\.(bpmn|xml)$/i, '').replace(/[^\w.-]+/g, '_').slice(0, 190);
    return (stem || 'diagram') + '.bpmn';
  }

  function upload(file) {
    if (!file) {
      return;
    }
    if (dirty && !window.confirm('Replace the diagram in the editor? Your unsaved changes ' +
        'will be lost.')) {
      return;
    }
    var previous = modeler.saveXML({ format: false });
    file.text().then(function (xml) {
      return importDiagram(xml).then(function (result) {
        fileName = safeFileName(file.name);
        setDirty(true);
        uploadedXml = xml;
        if (!(result.warnings && result.warnings.length)) {
          showStatus('', file.name + ' is open in the editor; save to deploy it.');
        }
      });
    }).catch(function (error) {
      showStatus('error', file.name + ' cannot be opened: ' + error.message);
      previous.then(function (result) { return importDiagram(result.xml); });
    });
  }

  // --- toolbar and keys ----------------------------------------------------------------

  saveButton.addEventListener('click', save);
  $('download-button').addEventListener('click', download);
  $('upload-button').addEventListener('click', function () { $('upload-input').click(); });
  $('upload-input').addEventListener('change', function (event) {
    upload(event.target.files[0]);
    event.target.value = '';
  });
  $('undo-button').addEventListener('click', function () { commandStack.undo(); });
  $('redo-button').addEventListener('click', function () { commandStack.redo(); });
  $('zoom-in-button').addEventListener('click', function () {
    modeler.get('zoomScroll').stepZoom(1);
  });
  $('zoom-out-button').addEventListener('click', function () {
    modeler.get('zoomScroll').stepZoom(-1);
  });
  $('zoom-fit-button').addEventListener('click', function () {
    canvas.zoom('fit-viewport', 'auto');
  });
  document.addEventListener('keydown', function (event) {
    if ((event.ctrlKey || event.metaKey) && !event.shiftKey && !event.altKey &&
        (event.key === 's' || event.key === 'S')) {
      event.preventDefault();
      save();
    }
  });

  importDiagram(config.xml).then(function () {
    setDirty(false);
    $('canvas').setAttribute('data-ready', 'true');
  }).catch(function (error) {
    showStatus('error', 'The diagram cannot be opened: ' + error.message);
  });
})();
