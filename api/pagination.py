"""Page-number pagination whose `page` and `page_size` are checked: a bad one is a 400,
not silently page 1 or the largest page."""

from typing import Any

from django.db.models import QuerySet
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from engine import selectors


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_number(self, request: Any, paginator: Any) -> Any:
        if self.page_query_param in request.query_params:
            raw = request.query_params[self.page_query_param]
            if raw != "last" and not (raw.isdigit() and int(raw) >= 1):
                raise ValidationError({self.page_query_param: "A page number from 1 on."})
        return super().get_page_number(request, paginator)

    def get_page_size(self, request: Any) -> int | None:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is not None and not (raw.isdigit() and 1 <= int(raw) <= self.max_page_size):
            raise ValidationError(
                {self.page_size_query_param: f"A number from 1 to {self.max_page_size}."}
            )
        return super().get_page_size(request)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters: list[dict[str, Any]] = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_query_param:
                parameter["schema"]["minimum"] = 1
            elif parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size)
        return parameters


class KeysetPagination(Pagination):
    """Pages that follow each other by cursor (`?cursor=`, what `next` and `previous` link
    to): a deep page costs what the first one does, and tasks added or finished between two
    pages make none appear twice or be skipped. `?page=` still pages by number."""

    cursor_query_param = "cursor"
    keyset: selectors.KeysetPage | None = None
    keyset_count = 0

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> list[Any] | None:
        if self.page_query_param in request.query_params or not isinstance(queryset, QuerySet):
            self.keyset = None
            return super().paginate_queryset(queryset, request, view)
        self.request = request
        size = self.get_page_size(request) or self.page_size or 50
        raw = request.query_params.get(self.cursor_query_param)
        cursor = None
        if raw:
            order = [str(field) for field in queryset.query.order_by]
            try:
                cursor = selectors.Cursor.decode(raw, queryset.model, order)
            except selectors.BadCursor:
                # As DRF's own cursor pages answer: no such page (an edited or stale link).
                raise NotFound(
                    "There is no such page: the cursor is not one of this list. "
                    "Follow `next` and `previous`."
                ) from None
        self.keyset = selectors.keyset_page(queryset, size, cursor)
        self.keyset_count = queryset.count()
        return self.keyset.rows

    def _cursor_link(self, cursor: selectors.Cursor | None) -> str:
        assert self.request is not None  # set by paginate_queryset
        url = remove_query_param(self.request.build_absolute_uri(), self.page_query_param)
        if cursor is None:
            return str(remove_query_param(url, self.cursor_query_param))
        return str(replace_query_param(url, self.cursor_query_param, cursor.encode()))

    def get_next_link(self) -> str | None:
        if self.keyset is None:
            return super().get_next_link()
        return self._cursor_link(self.keyset.next) if self.keyset.next else None

    def get_previous_link(self) -> str | None:
        if self.keyset is None:
            return super().get_previous_link()
        return self._cursor_link(self.keyset.previous) if self.keyset.has_previous else None

    def get_paginated_response(self, data: Any) -> Response:
        if self.keyset is None:
            return super().get_paginated_response(data)
        return Response(
            {
                "count": self.keyset_count,
                "next": self.get_next_link(),
                "previous": self.get_previous_link(),
                "results": data,
            }
        )

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        cursor = {
            "name": self.cursor_query_param,
            "required": False,
            "in": "query",
            "description": "Where the page starts: the cursor of a `next` or `previous` link.",
            "schema": {"type": "string"},
        }
        return [*super().get_schema_operation_parameters(view), cursor]
