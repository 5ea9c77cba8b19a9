"""Small SVG pictures of a diagram for the process list, drawn from its BPMN DI (shapes and
edges only, no labels), so that the list needs no JavaScript and no diagram library."""

from lxml import etree

from engine.bpmn.xml import BPMN_NS, parse_untrusted_xml

BPMNDI_NS = "http://www.omg.org/spec/BPMN/20100524/DI"
DC_NS = "http://www.omg.org/spec/DD/20100524/DC"
DI_NS = "http://www.omg.org/spec/DD/20100524/DI"
SVG_NS = "http://www.w3.org/2000/svg"
PADDING = 8.0
INK = "#1d2733"
LIGHT = "#8a96a3"

Box = tuple[float, float, float, float]


def _semantic_kinds(root: etree._Element) -> dict[str, str]:
    """BPMN element id -> its local tag name (userTask, exclusiveGateway, ...)."""
    kinds: dict[str, str] = {}
    for element in root.iter(f"{{{BPMN_NS}}}*"):
        element_id = element.get("id")
        if element_id:
            kinds[element_id] = etree.QName(element).localname
    return kinds


def _bounds(shape: etree._Element) -> Box | None:
    bounds = shape.find(f"{{{DC_NS}}}Bounds")
    if bounds is None:
        return None
    try:
        x, y, width, height = (float(bounds.get(n, "")) for n in ("x", "y", "width", "height"))
    except ValueError:
        return None
    return x, y, width, height


def _waypoints(edge: etree._Element) -> list[tuple[float, float]]:
    points = []
    for point in edge.findall(f"{{{DI_NS}}}waypoint"):
        try:
            points.append((float(point.get("x", "")), float(point.get("y", ""))))
        except ValueError:
            continue
    return points


def _sub(parent: etree._Element, tag: str, **attributes: object) -> etree._Element:
    return etree.SubElement(
        parent,
        f"{{{SVG_NS}}}{tag}",
        {key.replace("_", "-"): str(value) for key, value in attributes.items()},
    )


def _draw_shape(svg: etree._Element, kind: str, box: Box) -> None:
    x, y, width, height = box
    if kind in ("participant", "lane"):
        _sub(svg, "rect", x=x, y=y, width=width, height=height, fill="none", stroke=LIGHT)
    elif kind.endswith("Event"):
        radius = min(width, height) / 2
        stroke_width = 3 if kind == "endEvent" else 1.5
        _sub(
            svg,
            "circle",
            cx=x + width / 2,
            cy=y + height / 2,
            r=radius,
            fill="#fff",
            stroke=INK,
            stroke_width=stroke_width,
        )
        if kind.startswith("intermediate") or kind == "boundaryEvent":
            _sub(
                svg,
                "circle",
                cx=x + width / 2,
                cy=y + height / 2,
                r=max(radius - 3, 1),
                fill="none",
                stroke=INK,
            )
    elif kind.endswith("Gateway"):
        points = (
            f"{x + width / 2},{y} {x + width},{y + height / 2} "
            f"{x + width / 2},{y + height} {x},{y + height / 2}"
        )
        _sub(svg, "polygon", points=points, fill="#fff", stroke=INK, stroke_width=1.5)
    elif kind.endswith(("Task", "task", "Process", "callActivity", "transaction")):
        _sub(
            svg,
            "rect",
            x=x,
            y=y,
            width=width,
            height=height,
            rx=8,
            fill="#fff",
            stroke=INK,
            stroke_width=1.5,
        )
    else:  # data objects, stores, annotations, groups
        _sub(
            svg,
            "rect",
            x=x,
            y=y,
            width=width,
            height=height,
            fill="none",
            stroke=LIGHT,
            stroke_dasharray="4 3",
        )


def _draw_edge(svg: etree._Element, kind: str, points: list[tuple[float, float]]) -> None:
    dashes = {
        "messageFlow": "6 4",
        "association": "2 3",
        "dataInputAssociation": "2 3",
        "dataOutputAssociation": "2 3",
    }.get(kind)
    attributes: dict[str, object] = {
        "points": " ".join(f"{x},{y}" for x, y in points),
        "fill": "none",
        "stroke": INK if dashes is None else LIGHT,
        "stroke_width": 1.2,
    }
    if dashes:
        attributes["stroke_dasharray"] = dashes
    _sub(svg, "polyline", **attributes)


def diagram_thumbnail(bpmn_xml: str) -> str:
    """An SVG document (text) showing the first diagram of `bpmn_xml`; empty when it has none."""
    root = parse_untrusted_xml(bpmn_xml.encode("utf-8"))
    kinds = _semantic_kinds(root)
    plane = next(root.iter(f"{{{BPMNDI_NS}}}BPMNPlane"), None)
    shapes: list[tuple[str, Box]] = []
    edges: list[tuple[str, list[tuple[float, float]]]] = []
    if plane is not None:
        for shape in plane.iter(f"{{{BPMNDI_NS}}}BPMNShape"):
            box = _bounds(shape)
            if box is not None:
                shapes.append((kinds.get(shape.get("bpmnElement", ""), ""), box))
        for edge in plane.iter(f"{{{BPMNDI_NS}}}BPMNEdge"):
            points = _waypoints(edge)
            if len(points) >= 2:
                edges.append((kinds.get(edge.get("bpmnElement", ""), ""), points))
    xs = [v for _, (x, _, w, _) in shapes for v in (x, x + w)] + [
        x for _, points in edges for x, _ in points
    ]
    ys = [v for _, (_, y, _, h) in shapes for v in (y, y + h)] + [
        y for _, points in edges for _, y in points
    ]
    svg = etree.Element(f"{{{SVG_NS}}}svg", nsmap={None: SVG_NS})
    if not xs:
        svg.set("viewBox", "0 0 10 10")
        return etree.tostring(svg, encoding="unicode")
    left, top = min(xs) - PADDING, min(ys) - PADDING
    width, height = max(xs) - left + PADDING, max(ys) - top + PADDING
    svg.set("viewBox", f"{left} {top} {width} {height}")
    svg.set("preserveAspectRatio", "xMidYMid meet")
    # Pools and lanes first so that everything else is drawn on top of them.
    shapes.sort(key=lambda item: item[0] not in ("participant", "lane"))
    for kind, box in shapes:
        _draw_shape(svg, kind, box)
    for kind, points in edges:
        _draw_edge(svg, kind, points)
    return etree.tostring(svg, encoding="unicode")
