"""Use ``ponder serve`` from an unchanged OpenAI client: only the base URL changes.

Start the proxy first (in another terminal)::

    ponder serve -c examples/serve.yaml

then run ``python examples/serve_client.py``. With ``--in-process`` this script starts the proxy
itself (in a thread, in front of the embedded local model) and stops it at the end.
"""

from __future__ import annotations

import sys

import openai

QUESTION = [{"role": "user", "content": "What is 12 + 30?"}]


def demo(base_url: str) -> None:
    client = openai.OpenAI(base_url=base_url, api_key="unused-unless-api_key_env-is-set")
    print("models:", [m.id for m in client.models.list()])

    # 1. a chain, chosen by model name; usage counts every upstream token the chain spent
    raw = client.chat.completions.with_raw_response.create(model="ponder:cot", messages=QUESTION)
    resp = raw.parse()
    print("chain answer:", resp.choices[0].message.content[-80:].strip())
    print("usage:", resp.usage, "trace id:", raw.headers["x-ponder-trace-id"])
    print("ponder:", resp.model_extra["ponder"])

    # 2. the same chain chosen with extra_body, streamed
    stream = client.chat.completions.create(
        model="local", messages=QUESTION, stream=True, extra_body={"ponder": {"chain": "cot"}}
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    print("streamed chain answer:", text[-80:].strip())

    # 3. no chain: passed through to the upstream unchanged
    plain = client.chat.completions.create(model="local", messages=QUESTION, max_tokens=20)
    print("pass-through:", plain.choices[0].message.content)


if __name__ == "__main__":
    if "--in-process" in sys.argv:
        from ponder.serve import ServeConfig, ServerThread

        cfg = ServeConfig.from_dict(
            {"chains": {"cot": {"strategy": {"name": "cot", "max_tokens": 300}}}}
        )
        with ServerThread(cfg) as srv:
            demo(srv.base_url)
    else:
        demo("http://127.0.0.1:8000/v1")
