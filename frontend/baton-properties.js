// Baton's changes to the Camunda 7 properties panel, so that it offers only what Baton runs:
// - a service task's implementation is a Baton connector (camunda:type="external") or none:
//   Java class, expression, delegate expression and Camunda Connector are not offered (a
//   diagram that has one shows it as "not run by Baton", to be switched);
// - the topic of an external service task is a choice among the registered connectors, each
//   explained; aliases kept for old diagrams are not offered;
// - an http service task may name a connection (a choice among the named connections: an
//   input parameter `connection`);
// - external service tasks get a retry time cycle field (Baton reads
//   camunda:failedJobRetryTimeCycle for them whether or not they are asynchronous);
// - groups for what Baton does not run (listeners, field injection, connector inputs and
//   outputs, follow-up dates) are hidden, and hints about EL expressions speak of Baton's
//   Python expressions instead (a translate service of Baton's own).
import { SelectEntry, TextFieldEntry, isSelectEntryEdited, isTextFieldEntryEdited }
  from '@bpmn-io/properties-panel';
import { useService } from 'bpmn-js-properties-panel';
import { getBusinessObject, is } from 'bpmn-js/lib/util/ModelUtil';

const AFTER_CAMUNDA_PROVIDER = 100;
const IMPLEMENTATION_GROUP = 'CamundaPlatform__Implementation';
const JOB_EXECUTION_GROUP = 'CamundaPlatform__JobExecution';
const RETRY_CYCLE = 'camunda:FailedJobRetryTimeCycle';

// Groups of the Camunda provider for features Baton does not run.
const HIDDEN_GROUPS = [
  'CamundaPlatform__ConnectorInput',
  'CamundaPlatform__ConnectorOutput',
  'CamundaPlatform__FieldInjection',
  'CamundaPlatform__ExecutionListener',
  'CamundaPlatform__TaskListener'
];
// Entries Baton does not read.
const HIDDEN_ENTRIES = ['followUpDate'];
// The Implementation group's entries Baton keeps (the others configure Java, EL or Camunda
// Connector implementations).
const IMPLEMENTATION_ENTRIES = ['implementationType', 'externalTopic', 'batonRetryTimeCycle'];
const NOT_RUN = {
  class: 'Java class',
  expression: 'Expression',
  delegateExpression: 'Delegate expression',
  dmn: 'DMN decision',
  connector: 'Camunda Connector'
};

const PYTHON_EXPRESSION = 'Plain text, or ${expression}: a Python expression over the ' +
  'process data.';
// Hints of the Camunda provider that speak of Camunda's expression language, in Baton's terms.
const BATON_WORDING = {
  'Start typing "${}" to create an expression.': PYTHON_EXPRESSION,
  'The due date as an EL expression (e.g. ${someDate}) or an ISO date (e.g. 2015-06-26T09:54:00).':
    'An ISO 8601 date and time (2030-01-31T17:00:00Z), a duration (P3D, PT4H), or ' +
    '${expression} in Python giving one. Checked when the diagram is deployed.'
};

function batonTranslate(template, replacements) {
  const text = BATON_WORDING[template] || template;
  const values = replacements || {};
  return text.replace(/{([^}]+)}/g, (match, key) => (key in values ? values[key] : match));
}

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

  const choices = config.connectors || [];
  const current = owner.get('camunda:topic') || '';
  const chosen = choices.find((choice) => choice.name === current);

  const getOptions = () => {
    const options = [{ value: '', label: translate('<choose a connector>') }];
    if (current && !chosen) {
      options.push({ value: current, label: `${current} (not offered)` });
    }
    return options.concat(choices.map((choice) => ({
      value: choice.name,
      label: choice.description ? `${choice.name} - ${shortly(choice.description)}` : choice.name
    })));
  };

  return SelectEntry({
    element,
    id: 'externalTopic',
    label: translate('Connector (topic)'),
    description: chosen && chosen.description ? chosen.description
      : translate('What Baton calls: "http" or a connector registered in Python.'),
    getValue: () => owner.get('camunda:topic') || '',
    setValue: (value) => commandStack.execute('element.updateModdleProperties', {
      element,
      moddleElement: owner,
      properties: { 'camunda:topic': value || undefined }
    }),
    getOptions
  });
}

// The first clause of a description, for the option list.
function shortly(description) {
  return description.split(/[:.]/)[0];
}

function implementationTypeOf(owner) {
  if (owner.get('camunda:type') === 'external') {
    return 'external';
  }
  for (const type of ['class', 'expression', 'delegateExpression']) {
    if (owner.get(`camunda:${type}`) !== undefined) {
      return type;
    }
  }
  if (owner.get('camunda:decisionRef') !== undefined) {
    return 'dmn';
  }
  const extensionElements = owner.get('extensionElements');
  const values = (extensionElements && extensionElements.get('values')) || [];
  return values.some((value) => is(value, 'camunda:Connector')) ? 'connector' : '';
}

function ImplementationType(props) {
  const { element } = props;
  const commandStack = useService('commandStack');
  const translate = useService('translate');
  const owner = implementationOwner(element);
  const current = implementationTypeOf(owner);

  const setValue = (value) => {
    const properties = {
      'camunda:class': undefined,
      'camunda:expression': undefined,
      'camunda:delegateExpression': undefined,
      'camunda:resultVariable': undefined,
      'camunda:decisionRef': undefined,
      'camunda:type': value === 'external' ? 'external' : undefined,
      'camunda:topic': value === 'external' ? (owner.get('camunda:topic') || '') : undefined
    };
    const commands = [];
    const extensionElements = owner.get('extensionElements');
    if (extensionElements) {
      const values = extensionElements.get('values');
      const kept = values.filter((item) => !is(item, 'camunda:Connector'));
      if (kept.length !== values.length) {
        commands.push({
          cmd: 'element.updateModdleProperties',
          context: { element, moddleElement: extensionElements, properties: { values: kept } }
        });
      }
    }
    commands.push({
      cmd: 'element.updateModdleProperties',
      context: { element, moddleElement: owner, properties }
    });
    commandStack.execute('properties-panel.multi-command-executor', commands);
  };

  const getOptions = () => {
    const options = [
      { value: '', label: translate('<none>') },
      { value: 'external', label: translate('Baton connector') }
    ];
    if (NOT_RUN[current]) {
      options.push({ value: current, label: `${NOT_RUN[current]} (not run by Baton)` });
    }
    return options;
  };

  return SelectEntry({
    element,
    id: 'implementationType',
    label: translate('Type'),
    description: translate('Baton calls a connector (http or one registered in Python) or ' +
      'hands the task to an external worker over the REST API.'),
    getValue: () => current,
    setValue,
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

// The `connection` input parameter of an http task: a choice among the named connections
// (the task then gives a path under the connection's base URL as its `url` or `path`).
const CONNECTION_PARAMETER = 'connection';

function inputOutputOf(businessObject) {
  const extensionElements = businessObject.get('extensionElements');
  const values = (extensionElements && extensionElements.get('values')) || [];
  return values.find((value) => is(value, 'camunda:InputOutput'));
}

function connectionParameterOf(businessObject) {
  const inputOutput = inputOutputOf(businessObject);
  const inputs = (inputOutput && inputOutput.get('inputParameters')) || [];
  return inputs.find((input) => input.get('name') === CONNECTION_PARAMETER);
}

function connectionCommands(element, businessObject, bpmnFactory, value) {
  const commands = [];
  const update = (moddleElement, properties) => commands.push({
    cmd: 'element.updateModdleProperties', context: { element, moddleElement, properties }
  });
  const existing = connectionParameterOf(businessObject);
  if (existing) {
    const inputOutput = existing.$parent;
    if (value) {
      update(existing, { value });
    } else {
      update(inputOutput, {
        inputParameters: inputOutput.get('inputParameters').filter((p) => p !== existing)
      });
    }
    return commands;
  }
  if (!value) {
    return commands;
  }
  let extensionElements = businessObject.get('extensionElements');
  if (!extensionElements) {
    extensionElements = bpmnFactory.create('bpmn:ExtensionElements', { values: [] });
    extensionElements.$parent = businessObject;
    update(businessObject, { extensionElements });
  }
  let inputOutput = inputOutputOf(businessObject);
  if (!inputOutput) {
    inputOutput = bpmnFactory.create('camunda:InputOutput', {
      inputParameters: [], outputParameters: []
    });
    inputOutput.$parent = extensionElements;
    update(extensionElements, { values: [...extensionElements.get('values'), inputOutput] });
  }
  const parameter = bpmnFactory.create('camunda:InputParameter', {
    name: CONNECTION_PARAMETER, value
  });
  parameter.$parent = inputOutput;
  update(inputOutput, { inputParameters: [...inputOutput.get('inputParameters'), parameter] });
  return commands;
}

function ConnectionChoice(props) {
  const { element } = props;
  const bpmnFactory = useService('bpmnFactory');
  const commandStack = useService('commandStack');
  const translate = useService('translate');
  const config = useService('config.baton', false) || {};
  const businessObject = getBusinessObject(element);
  const choices = config.connections || [];
  const parameter = connectionParameterOf(businessObject);
  const current = (parameter && parameter.get('value')) || '';

  const getOptions = () => {
    const options = [{ value: '', label: translate('<none: the task gives a full url>') }];
    if (current && !choices.some((choice) => choice.name === current)) {
      options.push({ value: current, label: `${current} (no such connection)` });
    }
    return options.concat(choices.map((choice) => ({
      value: choice.name, label: `${choice.name} - ${choice.base_url}`
    })));
  };

  return SelectEntry({
    element,
    id: 'batonConnection',
    label: translate('Connection'),
    description: translate('A named connection (base URL, auth, limits): give the path under ' +
      'its base URL as the url (or path) input parameter.'),
    getValue: () => current,
    setValue: (value) => {
      const commands = connectionCommands(element, businessObject, bpmnFactory, value);
      if (commands.length) {
        commandStack.execute('properties-panel.multi-command-executor', commands);
      }
    },
    getOptions
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
    return (allGroups) => {
      const groups = allGroups.filter((group) => !HIDDEN_GROUPS.includes(group.id));
      groups.forEach((group) => {
        if (group.entries) {
          group.entries = group.entries.filter((entry) => !HIDDEN_ENTRIES.includes(entry.id));
        }
      });
      const implementation = groups.find((group) => group.id === IMPLEMENTATION_GROUP);
      if (!implementation) {
        return groups;
      }
      implementation.entries = implementation.entries
        .filter((entry) => IMPLEMENTATION_ENTRIES.includes(entry.id))
        .map((entry) => (entry.id === 'implementationType'
          ? { ...entry, component: ImplementationType, isEdited: isSelectEntryEdited }
          : entry));
      if (!isExternal(element)) {
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
      if (implementationOwner(element).get('camunda:topic') === 'http') {
        entries.push({ id: 'batonConnection', component: ConnectionChoice,
          isEdited: isSelectEntryEdited });
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
  batonPropertiesProvider: ['type', BatonPropertiesProvider],
  translate: ['value', batonTranslate]
};
