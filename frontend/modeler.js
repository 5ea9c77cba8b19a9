// The modeler bundle: bpmn-js with the properties panel, its Camunda 7 provider and Baton's
// own entries, built by `npm run build` (esbuild) into frontend/dist/ and exposed to the page
// script as `window.BatonModeler`.
import Modeler from 'bpmn-js/lib/Modeler';
import {
  BpmnPropertiesPanelModule,
  BpmnPropertiesProviderModule,
  CamundaPlatformPropertiesProviderModule
} from 'bpmn-js-properties-panel';
import CamundaPlatformBehaviorsModule from 'camunda-bpmn-js-behaviors/lib/camunda-platform';
import camundaModdle from 'camunda-bpmn-moddle/resources/camunda.json';

import BatonPropertiesModule from './baton-properties';

import '@bpmn-io/properties-panel/dist/assets/properties-panel.css';

/**
 * A modeler drawing into `container` with its properties panel in `propertiesParent`.
 * `connectors` are the names the topic of an external service task may take; `connections`
 * the named connections an http task may call ({name, base_url}).
 */
export function createModeler({ container, propertiesParent, connectors = [], connections = [] }) {
  return new Modeler({
    container,
    propertiesPanel: { parent: propertiesParent },
    additionalModules: [
      BpmnPropertiesPanelModule,
      BpmnPropertiesProviderModule,
      CamundaPlatformPropertiesProviderModule,
      CamundaPlatformBehaviorsModule,
      BatonPropertiesModule
    ],
    moddleExtensions: { camunda: camundaModdle },
    baton: { connectors, connections }
  });
}
