"""Safe XML parsing for uploaded diagrams."""
import re

from lxml import etree

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
DMN_NAMESPACES = (
    "https://www.omg.org/spec/DMN/20191111/MODEL/",
    "http://www.omg.org/spec/DMN/20151101/dmn.xsd",
    "http://www.omg.org/spec/DMN/20180521/MODEL/",
)
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"
ZEEBE_NS = "http://camunda.org/schema/zeebe/1.0"
NSMAP = {"bpmn": BPMN_NS, "camunda": CAMUNDA_NS, "spiffworkflow": SPIFF_NS, "zeebe": ZEEBE_NS}


class UnsafeXmlError(ValueError):
    """The document declares a DTD or entities, which Baton never accepts."""


# A DOCTYPE in the prolog: after an optional BOM, XML declaration, comments and PIs.
_PROLOG_DOCTYPE = re.compile(
    rb"\A(?:\xef\xbb\xbf)?\s*(?:<\?.*?\?>\s*|<!--.*?-->\s*)*<!DOCTYPE", re.DOTALL
)
_DOCTYPE_MESSAGE = "The file declares a DOCTYPE (DTD or entities). Diagrams must not contain one."


def parse_untrusted_xml(content: bytes) -> etree._Element:
    """Parse an uploaded document with entities, DTDs and network access turned off.

    Raises `etree.XMLSyntaxError` for malformed XML and `UnsafeXmlError` for any DOCTYPE:
    a diagram never needs one, and refusing it outright also stops entity expansion bombs.
    """
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
    )
    try:
        root = etree.fromstring(content, parser=parser)
    except etree.XMLSyntaxError:
        # An entity that libxml2 refuses to expand (an external one, or an expansion bomb in
        # an attribute) fails the parse; name the real problem rather than "malformed".
        if _PROLOG_DOCTYPE.match(content):
            raise UnsafeXmlError(_DOCTYPE_MESSAGE) from None
        raise
    doctype = root.getroottree().docinfo.doctype
    if doctype:
        raise UnsafeXmlError(_DOCTYPE_MESSAGE)
    return root


def element_at_line(root: etree._Element, line: int | None) -> str:
    """The id of the innermost element with an id that starts on `line`, or ''."""
    if not line:
        return ""
    found = ""
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        if element.sourceline == line and element.get("id"):
            found = element.get("id") or ""
        elif element.sourceline is not None and element.sourceline > line:
            break
    return found


def line_of_element(root: etree._Element, element_id: str) -> int | None:
    if not element_id:
        return None
    for element in root.iter():
        if isinstance(element.tag, str) and element.get("id") == element_id:
            return element.sourceline
    return None
