"""An external task worker as any team would write one: Baton's REST API through the Python
client only (no Django, no database). Started as a process by test_worker_process.py:

    python worker_process.py BASE_URL TOKEN WORKER_ID TASKS

It handles `payments.charge` until it has handled TASKS tasks: a card over 1000 is declined
(a BPMN error), anything else is charged (completed with a receipt)."""

import sys

from baton_client import BatonClient, BpmnError, ExternalTask, Worker


def main(base_url: str, token: str, worker_id: str, tasks: int) -> None:
    with BatonClient(base_url, token=token) as client:
        worker = Worker(client, worker_id=worker_id, long_poll=5_000)

        @worker.topic("payments.charge", lock_duration=30_000)
        def charge(task: ExternalTask) -> dict[str, object]:
            cents = task.variables["cents"]
            if cents > 100_000:
                raise BpmnError("CARD_DECLINED", "over the limit", {"declined_cents": cents})
            return {"receipt": f"R-{cents}-{task.variables['currency']}", "charged_by": worker_id}

        handled = worker.run(stop_after=tasks)
        print(f"handled {handled}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
