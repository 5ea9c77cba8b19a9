"""The graphql and llm/chat connectors end to end: a diagram's service task, run by the
worker code in this process, against local stubs of a GraphQL endpoint and of the OpenAI
chat completions API on 127.0.0.1."""

import json
from typing import Any

import pytest

from tests.connectors.diagrams import job_of, run
from tests.engine.service_fixtures import FakeApi, Reply

pytestmark = pytest.mark.django_db(transaction=True)

QUERY = "query Order($id: ID!) { order(id: $id) { id status } }"


def graphql_params(**more: str) -> dict[str, str]:
    return {
        "url": 'api + "/graphql"',
        "query": repr(QUERY),
        "variables": "{'id': order_id}",
        "headers": "{'Authorization': 'Bearer secret:SHOP_TOKEN'}",
        **more,
    }


def test_graphql_sends_query_and_variables_and_returns_data(
    fake_api: FakeApi, settings: Any
) -> None:
    settings.BATON_SECRETS = {"SHOP_TOKEN": "shop-token-4431"}
    fake_api.reply("/graphql", Reply(body={"data": {"order": {"id": "7", "status": "PAID"}}}))
    instance = run(
        "gql_ok",
        "graphql",
        graphql_params(operation_name="'Order'"),
        {"api": fake_api.base_url, "order_id": "7"},
    )
    assert instance.status == "completed", instance.incident
    assert instance.variables["outcome"] == {"order": {"id": "7", "status": "PAID"}}
    [seen] = fake_api.requests_to("/graphql")
    assert seen.method == "POST"
    assert json.loads(seen.body) == {
        "query": QUERY,
        "variables": {"id": "7"},
        "operationName": "Order",
    }
    assert seen.headers["Authorization"] == "Bearer shop-token-4431"


def test_graphql_errors_are_the_bpmn_error_graphql_error(fake_api: FakeApi, settings: Any) -> None:
    settings.BATON_SECRETS = {"SHOP_TOKEN": "shop-token-long-enough"}
    errors = {"errors": [{"message": "Order 8 not found"}, {"message": "try again"}], "data": None}
    fake_api.reply("/graphql", Reply(body=errors))
    instance = run(
        "gql_err",
        "graphql",
        graphql_params(),
        {"api": fake_api.base_url, "order_id": "8"},
        catch="GRAPHQL_ERROR",
    )
    assert instance.status == "completed" and instance.variables.get("caught") is True
    assert "Order 8 not found; try again" in job_of(instance).last_error

    # A server that answers a bad query with 400 and its errors: still GRAPHQL_ERROR.
    fake_api.reply("/graphql", Reply(status=400, body={"errors": [{"message": "Syntax Error"}]}))
    instance = run(
        "gql_400", "graphql", graphql_params(), {"api": fake_api.base_url, "order_id": 1}
    )
    assert instance.status == "incident"
    assert "GRAPHQL_ERROR: Syntax Error" in str(instance.incident)


def completion(content: str, **usage: int) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "stub-model-1",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": usage or {"prompt_tokens": 31, "completion_tokens": 9, "total_tokens": 40},
    }


SCHEMA = {
    "type": "object",
    "properties": {
        "category": {"enum": ["billing", "bug", "other"]},
        "urgent": {"type": "boolean"},
    },
    "required": ["category", "urgent"],
    "additionalProperties": False,
}


def llm_params(**more: str) -> dict[str, str]:
    return {
        "base_url": 'api + "/v1"',
        "model": "'stub-model'",
        "api_key": "'secret:LLM_KEY'",
        "system": "'You sort support tickets.'",
        "prompt": "'Ticket from {{ ticket.customer }}: {{ ticket.text }}'",
        "context": "{'ticket': ticket}",
        **more,
    }


TICKET = {"customer": "Ann", "text": "I was charged twice"}


def test_llm_chat_renders_the_prompt_and_records_token_usage(
    fake_api: FakeApi, settings: Any
) -> None:
    settings.BATON_SECRETS = {"LLM_KEY": "sk-test-9b2e"}
    fake_api.reply("/v1/chat/completions", Reply(body=completion("It is a billing question.")))
    instance = run(
        "llm_ok",
        "llm/chat",
        llm_params(temperature="0"),
        {"api": fake_api.base_url, "ticket": TICKET},
    )
    assert instance.status == "completed", instance.incident
    [seen] = fake_api.requests_to("/v1/chat/completions")
    assert seen.headers["Authorization"] == "Bearer sk-test-9b2e"
    assert json.loads(seen.body) == {
        "model": "stub-model",
        "messages": [
            {"role": "system", "content": "You sort support tickets."},
            {"role": "user", "content": "Ticket from Ann: I was charged twice"},
        ],
        "temperature": 0,
    }
    result = instance.variables["outcome"]
    assert result["content"] == "It is a billing question."
    assert result["usage"] == {"prompt_tokens": 31, "completion_tokens": 9, "total_tokens": 40}
    recorded = job_of(instance).result
    assert isinstance(recorded, dict) and recorded["usage"]["total_tokens"] == 40  # on the job
    assert "sk-test-9b2e" not in json.dumps(job_of(instance).parameters)


def test_structured_output_is_validated_before_it_is_stored(
    fake_api: FakeApi, settings: Any
) -> None:
    settings.BATON_SECRETS = {"LLM_KEY": "sk-test-long-enough"}
    answer = json.dumps({"category": "billing", "urgent": True})
    fake_api.reply("/v1/chat/completions", Reply(body=completion(answer)))
    params = llm_params(json_schema=repr(SCHEMA))
    instance = run("llm_json", "llm/chat", params, {"api": fake_api.base_url, "ticket": TICKET})
    assert instance.status == "completed", instance.incident
    assert instance.variables["outcome"]["json"] == {"category": "billing", "urgent": True}
    sent = json.loads(fake_api.requests_to("/v1/chat/completions")[0].body)
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["schema"] == SCHEMA

    # An answer that does not match the schema is never stored: a catchable BPMN error.
    bad = json.dumps({"category": "weather", "urgent": "yes"})
    fake_api.reply("/v1/chat/completions", Reply(body=completion(bad)))
    instance = run(
        "llm_bad",
        "llm/chat",
        params,
        {"api": fake_api.base_url, "ticket": TICKET},
        catch="LLM_INVALID_OUTPUT",
    )
    assert instance.status == "completed" and instance.variables.get("caught") is True
    assert "outcome" not in instance.variables
    assert "category: 'weather' is not one of" in job_of(instance).last_error

    fake_api.reply("/v1/chat/completions", Reply(body=completion("Sure! Here it is: {")))
    instance = run("llm_text", "llm/chat", params, {"api": fake_api.base_url, "ticket": TICKET})
    assert instance.status == "incident" and "not JSON" in str(instance.incident)


def test_llm_refusals_of_bad_parameters_and_answers(fake_api: FakeApi, settings: Any) -> None:
    settings.BATON_SECRETS = {"LLM_KEY": "sk-test-long-enough"}
    variables = {"api": fake_api.base_url, "ticket": TICKET}
    instance = run(
        "llm_schema", "llm/chat", llm_params(json_schema="{'type': 'nonsense'}"), variables
    )
    assert "LLM_BAD_PARAMETERS" in str(instance.incident)
    instance = run("llm_missing", "llm/chat", llm_params(prompt="'Hello {{ nobody }}'"), variables)
    assert "does not hold" in str(instance.incident)
    fake_api.reply("/v1/chat/completions", Reply(status=401, body={"error": "bad key"}))
    instance = run("llm_401", "llm/chat", llm_params(), variables)
    assert "HTTP_401" in str(instance.incident)
    assert fake_api.requests_to("/v1/chat/completions")  # only the last one was sent
    assert len(fake_api.requests_to("/v1/chat/completions")) == 1
