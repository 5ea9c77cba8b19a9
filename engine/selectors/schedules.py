"""Timer start events as schedules, for operators."""

from django.db.models import Exists, OuterRef, QuerySet

from engine.models import StartTrigger
from processes.models import ProcessDefinition


def schedule_list(*, definition: str = "", current_only: bool = False) -> QuerySet[StartTrigger]:
    """Timer start triggers, newest version first; `current` tells whether each belongs to
    the latest version of its process (only those start instances)."""
    newer = ProcessDefinition.objects.filter(
        key=OuterRef("definition__key"), version__gt=OuterRef("definition__version")
    )
    rows = (
        StartTrigger.objects.filter(kind=StartTrigger.Kind.TIMER)
        .select_related("definition")
        .defer("definition__spec", "definition__bpmn_xml", "definition__elements")
        .annotate(superseded=Exists(newer))
        .order_by("definition__key", "-definition__version", "element_id")
    )
    if definition:
        rows = rows.filter(definition__key=definition)
    if current_only:
        rows = rows.filter(superseded=False)
    return rows
