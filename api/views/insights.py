"""Process statistics and engine totals (the numbers the insights page shows)."""

import datetime
from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from engine.selectors import insights

from ..schema import BAD_REQUEST, NOT_FOUND, UNAUTHENTICATED
from ..serializers import query_filters

FORBIDDEN_NOTE = "403 when the user is not allowed to see them."


class StatisticsFilterSerializer(serializers.Serializer):
    version = serializers.IntegerField(required=False, min_value=1)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
    business_key_prefix = serializers.CharField(
        required=False,
        max_length=255,
        help_text="Operators only (403 for others: the answer would tell which keys exist).",
    )


ELEMENT_STATISTICS_FIELDS: dict[str, serializers.Field] = {
    "element_id": serializers.CharField(),
    "name": serializers.CharField(),
    "element_type": serializers.CharField(help_text='"Process" for the process itself.'),
    "runs": serializers.IntegerField(help_text="Runs that started in the range."),
    "ended": serializers.IntegerField(help_text="Runs that ended in the range."),
    "completed": serializers.IntegerField(),
    "cancelled": serializers.IntegerField(),
    "errors": serializers.IntegerField(help_text="Ended by a caught BPMN error."),
    "incidents": serializers.IntegerField(),
    "mean_ms": serializers.FloatField(allow_null=True),
    "p95_ms": serializers.FloatField(
        allow_null=True, help_text="Interpolated within its duration bucket."
    ),
    "incident_rate": serializers.FloatField(),
    "error_rate": serializers.FloatField(help_text="(errors + incidents) / ended"),
    "connector": serializers.CharField(help_text="The connector of a service task, or ''."),
}


def _filter(request: Request, key: str) -> insights.InsightFilter:
    values = query_filters(StatisticsFilterSerializer, request.query_params)
    return insights.insight_filter(
        request.user,
        key,
        version=values.get("version"),
        since=values.get("since"),
        until=values.get("until"),
        business_key_prefix=values.get("business_key_prefix", ""),
    )


class DefinitionStatisticsView(APIView):
    @extend_schema(
        operation_id="definition_statistics",
        summary="Per element statistics of a process (runs, durations, errors, incidents)",
        description="From the hourly roll-ups of element runs, for all versions or one, over "
        "the last 30 days unless `since`/`until` say otherwise. Operators and designers. "
        + FORBIDDEN_NOTE,
        parameters=[StatisticsFilterSerializer],
        responses={
            200: inline_serializer(
                "DefinitionStatistics",
                {
                    "key": serializers.CharField(),
                    "since": serializers.DateTimeField(),
                    "until": serializers.DateTimeField(),
                    "elements": inline_serializer(
                        "ElementStatistics", ELEMENT_STATISTICS_FIELDS, many=True
                    ),
                },
            ),
            400: BAD_REQUEST,
            401: UNAUTHENTICATED,
            404: NOT_FOUND,
        },
    )
    def get(self, request: Request, key: str) -> Response:
        flt = _filter(request, key)
        stats = insights.element_statistics(flt)
        return Response(
            {
                "key": key,
                "since": flt.since,
                "until": flt.until,
                "elements": [element.as_dict() for element in stats],
            }
        )


class MetricsSummaryView(APIView):
    @extend_schema(
        operation_id="metrics_summary",
        summary="Engine totals: active instances, incidents, queue depth, oldest pending job",
        description="Operators only. " + FORBIDDEN_NOTE,
        responses={
            200: inline_serializer(
                "MetricsSummary",
                {
                    "active_instances": serializers.IntegerField(),
                    "incidents": serializers.IntegerField(),
                    "queue_depth": serializers.IntegerField(
                        help_text="Service jobs waiting for a worker."
                    ),
                    "running_jobs": serializers.IntegerField(),
                    "oldest_pending_job_at": serializers.DateTimeField(allow_null=True),
                    "oldest_pending_job_age_seconds": serializers.FloatField(allow_null=True),
                    "pending_deliveries": serializers.IntegerField(
                        help_text="Messages and signals not yet applied."
                    ),
                },
            ),
            401: UNAUTHENTICATED,
        },
    )
    def get(self, request: Request) -> Response:
        summary = insights.engine_summary(request.user)
        data: dict[str, Any] = dict(summary.__dict__)
        if isinstance(data["oldest_pending_job_at"], datetime.datetime):
            data["oldest_pending_job_at"] = data["oldest_pending_job_at"].isoformat()
        return Response(data)
