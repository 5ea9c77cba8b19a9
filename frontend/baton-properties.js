// Baton's changes to the Camunda 7 properties panel:
// - the topic of an external service task is a choice among the registered connectors;
// - external service tasks get a retry time cycle field (Baton reads
//   camunda:failedJobRetryTimeCycle for them whether or not they are asynchronous).
import { SelectEntry, TextFieldEntry, isSelectEntryEdited, isTextFieldEntryEdited }
  from '@bpmn-io/properties-panel';
import { useService } from 'bpmn-js-properties-panel';
import { getBusinessObject, is } from 'bpmn-js/lib/util/ModelUtil';

const AFTER_CAMUNDA_PROVIDER = 100;
const IMPLEMENTATION_GROUP = 'CamundaPlatform__Implementation';
const JOB_EXECUTION_GROUP = 'CamundaPlatform__JobExecution';
const RETRY_CYCLE = 'camunda:FailedJobRetryTimeCycle';

// Where the camunda:type/topic attributes of a "service task like" element live: the
// element itself, or the message event definition of a message throw/end event.
function implementationOwner(element) {
  const businessObject = getBusinessObject(element);
  if (is(businessObject, 'bpmn:ServiceTask') || is(businessObject, 'bpmn:SendTask') ||
      is(businessObject, 'bpmn:BusinessRuleTask')) {
    return businessObject;
  }
  const definitions = businessObject.get('eventDefinitions') || [];
  return definitions.find((definition) => is(definition, 'bpmn:MessageEventDefinition')) ||
    businessObject;
}

function isExternal(element) {
  return implementationOwner(element).get('camunda:type') === 'external';
}

function ConnectorTopic(props) {
  const { element } = props;
  const commandStack = useService('commandStack');
  const translate = useService('translate');
  const config = useService('config.baton', false) || {};
  const owner = implementationOwner(element);

  const getOptions = () => {
    const current = owner.get('camunda:topic') || '';
    const names = config.connectors || [];
    const options = [{ value: '', label: translate('<choose a connector>') }];
    if (current && !names.includes(current)) {
      options.push({ value: current, label: `${current} (not registered)` });
    }
    return options.concat(names.map((name) => ({ value: name, label: name })));
  };

  return SelectEntry({
    element,
    id: 'externalTopic',
    label: translate('Connector (topic)'),
    description: translate('What Baton calls: "http" or a connector registered in Python.'),
    getValue: () => owner.get('camunda:topic') || '',
    setValue: (value) => commandStack.execute('element.updateModdleProperties', {
      element,
      moddleElement: owner,
      properties: { 'camunda:topic': value || undefined }
    }),
    getOptions
  });
}

function retryCycleOf(businessObject) {
  const extensionElements = businessObject.get('extensionElements');
  const values = (extensionElements && extensionElements.get('values')) || [];
  return values.find((value) => is(value, RETRY_CYCLE));
}

function RetryCycle(props) {
  const { element } = props;
  const bpmnFactory = useService('bpmnFactory');
  const commandStack = useService('commandStack');
  const translate = useService('translate');
  const debounce = useService('debounceInput');
  const businessObject = getBusinessObject(element);

  const setValue = (value) => {
    const commands = [];
    let extensionElements = businessObject.get('extensionElements');
    if (!extensionElements) {
      extensionElements = bpmnFactory.create('bpmn:ExtensionElements', { values: [] });
      extensionElements.$parent = businessObject;
      commands.push({
        cmd: 'element.updateModdleProperties',
        context: { element, moddleElement: businessObject, properties: { extensionElements } }
      });
    }
    let cycle = retryCycleOf(businessObject);
    if (!cycle) {
      cycle = bpmnFactory.create(RETRY_CYCLE, {});
      cycle.$parent = extensionElements;
      commands.push({
        cmd: 'element.updateModdleProperties',
        context: {
          element,
          moddleElement: extensionElements,
          properties: { values: [...extensionElements.get('values'), cycle] }
        }
      });
    }
    commands.push({
      cmd: 'element.updateModdleProperties',
      context: { element, moddleElement: cycle, properties: { body: value } }
    });
    commandStack.execute('properties-panel.multi-command-executor', commands);
  };

  return TextFieldEntry({
    element,
    id: 'batonRetryTimeCycle',
    label: translate('Retry time cycle'),
    description: translate('Attempts and interval, e.g. R5/PT30S (default: 3 with backoff).'),
    getValue: () => {
      const cycle = retryCycleOf(businessObject);
      return (cycle && cycle.body) || '';
    },
    setValue,
    debounce
  });
}

function hasEntry(groups, groupId, entryId) {
  const group = groups.find((candidate) => candidate.id === groupId);
  return !!group && group.entries.some((entry) => entry.id === entryId);
}

export class BatonPropertiesProvider {
  constructor(propertiesPanel) {
    propertiesPanel.registerProvider(AFTER_CAMUNDA_PROVIDER, this);
  }

  getGroups(element) {
    return (groups) => {
      const implementation = groups.find((group) => group.id === IMPLEMENTATION_GROUP);
      if (!implementation || !isExternal(element)) {
        return groups;
      }
      const entries = implementation.entries;
      const topicIndex = entries.findIndex((entry) => entry.id === 'externalTopic');
      const topic = { id: 'externalTopic', component: ConnectorTopic,
        isEdited: isSelectEntryEdited };
      if (topicIndex >= 0) {
        entries.splice(topicIndex, 1, topic);
      } else {
        entries.push(topic);
      }
      const asyncShowsRetry = hasEntry(groups, JOB_EXECUTION_GROUP, 'retryTimeCycle');
      if (is(element, 'bpmn:ServiceTask') && !asyncShowsRetry) {
        entries.push({ id: 'batonRetryTimeCycle', component: RetryCycle,
          isEdited: isTextFieldEntryEdited });
      }
      return groups;
    };
  }
}

BatonPropertiesProvider.$inject = ['propertiesPanel'];

export default {
  __init__: ['batonPropertiesProvider'],
  batonPropertiesProvider: ['type', BatonPropertiesProvider]
};
