"""Parsing BPMN/DMN documents into SpiffWorkflow specs, in the dialect each deployment uses."""

from lxml import etree
from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnParser, BpmnValidator, full_tag
from SpiffWorkflow.camunda.parser.CamundaParser import CamundaParser
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser

from .connector_tasks import (
    CamundaConnectorTaskParser,
    ConnectorTask,
    SpiffConnectorTask,
    SpiffConnectorTaskParser,
)
from .event_definitions import CamundaEventParserMixin, EventParserMixin, event_parser_overrides
from .xml import SPIFF_NS

SERVICE_TASK = full_tag("serviceTask")


class BatonCamundaParser(CamundaParser):
    """Camunda 7/8 diagrams; service tasks become connector tasks; timers, messages and
    signals are read as engine.bpmn.event_definitions describes."""

    OVERRIDE_PARSER_CLASSES = {
        **CamundaParser.OVERRIDE_PARSER_CLASSES,
        SERVICE_TASK: (CamundaConnectorTaskParser, ConnectorTask),
        **event_parser_overrides(
            {**BpmnParser.PARSER_CLASSES, **CamundaParser.OVERRIDE_PARSER_CLASSES},
            CamundaEventParserMixin,
        ),
    }


class BatonSpiffParser(SpiffBpmnParser):
    """SpiffArena diagrams; service tasks become connector tasks run by Baton's workers."""

    OVERRIDE_PARSER_CLASSES = {
        **SpiffBpmnParser.OVERRIDE_PARSER_CLASSES,
        SERVICE_TASK: (SpiffConnectorTaskParser, SpiffConnectorTask),
        **event_parser_overrides(SpiffBpmnParser.OVERRIDE_PARSER_CLASSES, EventParserMixin),
    }


def detect_dialect(roots: list[etree._Element]) -> str:
    """SpiffArena diagrams need the Spiff parser; everything else is read as Camunda 7."""
    for root in roots:
        if SPIFF_NS in root.nsmap.values() or root.find(f".//{{{SPIFF_NS}}}*") is not None:
            return "spiff"
    return "camunda"


_VALIDATOR: BpmnValidator | None = None


def bpmn_validator() -> BpmnValidator:
    """The BPMN 2.0 XSD validator; loading the schema is slow, so it is built once."""
    global _VALIDATOR
    if _VALIDATOR is None:
        _VALIDATOR = BpmnValidator()
    return _VALIDATOR


def build_parser(dialect: str) -> BpmnParser:
    parser_class = BatonSpiffParser if dialect == "spiff" else BatonCamundaParser
    parser: BpmnParser = parser_class(validator=bpmn_validator())
    return parser
