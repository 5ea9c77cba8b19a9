"""Parsing BPMN/DMN documents into SpiffWorkflow specs, in the dialect each deployment uses."""
from lxml import etree
from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnParser, BpmnValidator
from SpiffWorkflow.camunda.parser.CamundaParser import CamundaParser
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser

from .xml import SPIFF_NS


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
    parser_class = SpiffBpmnParser if dialect == "spiff" else CamundaParser
    parser: BpmnParser = parser_class(validator=bpmn_validator())
    return parser
