"""Relaying a held request to its provider and the answer back: complete answers, streams,
and the operations providers do not charge for.

A complete answer is charged before it is sent. A stream's events are forwarded as they
arrive; from the event carrying the final usage on, the output waits until the charge is
durable and goes out with the cost stamped in (see ``StreamMeter.stamp``). A client hanging
up stops the upstream at once, and what the provider produced is billed. An upstream 4xx/5xx,
or an upstream that cannot be reached, is not billed.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

from kakin.config import Settings
from kakin.errors import KakinError
from kakin.gateway.answers import AnswerStore
from kakin.gateway.billing import Billing
from kakin.gateway.call import Call
from kakin.gateway.client import UpstreamClient, UpstreamError, UpstreamResponse
from kakin.gateway.http import HangUp, Receive, Send, header_list, respond
from kakin.gateway.ownership import ObjectGuard
from kakin.gateway.upstream import NoUpstream, UpstreamTimeout, upstream_headers
from kakin.metrics import Metrics
from kakin.money import decimal_str
from kakin.providers import ParsedRequest, StreamMeter, stream_error_event, upstream_request, usage_from_body


class Relay:
    def __init__(
        self,
        settings: Settings,
        billing: Billing,
        objects: ObjectGuard,
        answers: AnswerStore,
        metrics: Metrics,
    ) -> None:
        self.settings = settings
        self.billing = billing
        self.objects = objects
        self.answers = answers
        self.metrics = metrics
        self.session: UpstreamClient | None = None  # opened by start, on the running loop

    async def start(self) -> None:
        self.session = UpstreamClient(self.settings.gateway.upstream_timeout_seconds)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def forward(
        self, call: Call, bound: Decimal, headers: dict[str, str], receive: Receive, send: Send, ckey: str
    ) -> None:
        """Send a held request upstream and relay the answer; ``ckey``: where to cache it ("": not)."""
        call.extra_headers = [
            ("x-kakin-request-id", call.request_id),
            ("x-kakin-reserved-usd", decimal_str(bound)),
        ]
        if call.route.routed_from:
            call.extra_headers.append(("x-kakin-routed-to", call.route.model))
        parsed = call.parsed
        up = upstream_request(
            parsed,
            model=call.route.model if call.route.routed_from else None,
            api_version=call.provider.api_version or None,
            output_limit=self._output_limit(parsed),
        )
        if parsed.stream:
            await self._stream(call, up, headers, receive, send, ckey)
            return
        response = await self._open(call, up, headers)
        try:
            if response.status >= 400:
                await self._pass_error(call, response, send)
            else:
                await self._complete(call, response, send, ckey)
        finally:
            response.release()

    def _output_limit(self, parsed: ParsedRequest) -> int | None:
        """The output limit to send with a request that sets none: the one held for each of
        its answers, so no answer can cost more than its hold (None: forward it unchanged)."""
        if self.settings.gateway.output_limit != "enforce":
            return None
        return parsed.output_limit(self.settings.gateway.default_max_output_tokens)

    async def _open(self, call: Call, up: Any, headers: dict[str, str]) -> UpstreamResponse:
        assert self.session is not None
        url = call.provider.base_url.rstrip("/") + up.path
        call.forwarded = True
        started = time.perf_counter()
        try:
            response = await self.session.request(
                call.parsed.endpoint.method,
                url,
                up.body,
                upstream_headers(headers, call.provider, call.api, up.headers),
            )
            self.metrics.upstream(call.provider.name, time.perf_counter() - started)
            return response
        except TimeoutError:
            raise UpstreamTimeout(
                f"{call.provider.name} did not answer in time; the request was not billed"
            ) from None
        except UpstreamError as exc:
            raise NoUpstream(
                f"could not reach {call.provider.name} ({exc}); the request was not billed"
            ) from None

    async def _pass_error(self, call: Call, response: UpstreamResponse, send: Send) -> None:
        """An upstream 4xx/5xx is not billed: void the hold, hand the provider's answer over."""
        body = await response.read()
        await self.billing.void(call)
        extra = [(k, v) for k, v in response.headers.items() if k.lower() == "retry-after"]
        await respond(
            send,
            response.status,
            body,
            response.headers.get("content-type", "application/json"),
            extra + call.extra_headers,
        )

    async def _complete(self, call: Call, response: UpstreamResponse, send: Send, ckey: str) -> None:
        try:
            body = await response.read()
        except (TimeoutError, UpstreamError):
            raise UpstreamTimeout(
                f"{call.provider.name} broke off its answer; the request was not billed"
            ) from None
        usage = usage_from_body(call.parsed, body)
        note = ""
        if usage is None:
            # Never a silent zero: without reported usage, charge the bound that was reserved.
            usage = call.parsed.bound_usage(self.settings.gateway.default_max_output_tokens)
            note = _NO_USAGE
        cost = await self.billing.settle(call, usage, note)
        body = await self.objects.answered(call.caller.key, call.parsed, response.status, body)
        content_type = response.headers.get("content-type", "application/json")
        extra = [*call.extra_headers, ("x-kakin-cost-usd", decimal_str(cost))]
        credit = self.billing.credit_left(call)
        if credit is not None:
            extra.append(("x-kakin-credit-remaining-usd", decimal_str(credit)))
        if ckey:
            await self.answers.remember(ckey, call, response.status, content_type, body, cost)
        if call.idempotency_key:
            await self.answers.keep_for_replay(call, response.status, content_type, body, cost)
        await respond(send, response.status, body, content_type, extra)

    async def _stream(
        self,
        call: Call,
        up: Any,
        headers: dict[str, str],
        receive: Receive,
        send: Send,
        ckey: str,
    ) -> None:
        """Open and relay a stream. The client hanging up stops the upstream at once: the
        answer's head is no longer waited for, or the connection reading the answer is closed,
        so the provider stops producing; what it produced is billed."""
        hangup = HangUp(receive)
        try:
            opening = asyncio.ensure_future(self._open(call, up, headers))
            hangup.then(opening.cancel)
            try:
                response = await opening
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not hangup.gone or (task is not None and task.cancelling()):
                    raise  # the gateway itself is being stopped
                await self._bill_hangup(call, StreamMeter(call.parsed))
                return
            try:
                hangup.then(response.abort)
                if response.status >= 400:
                    await self._pass_error(call, response, send)
                else:
                    await self._relay_events(call, response, hangup, send, ckey)
            finally:
                response.release()
        finally:
            hangup.stop()

    async def _relay_events(
        self, call: Call, response: UpstreamResponse, hangup: HangUp, send: Send, ckey: str
    ) -> None:
        """Forward each event as it arrives; from the event carrying the final usage on, hold
        the output until the charge is durable, then send it with the cost stamped in."""
        meter = StreamMeter(call.parsed)
        content_type = response.headers.get("content-type", "text/event-stream")
        delivered: list[bytes] = []
        held = b""  # from the event carrying the final usage on: sent once the charge is durable
        broken = False
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": header_list(content_type, call.extra_headers),
            }
        )
        try:
            async for chunk in response:  # ends early once the client has gone (abort)
                out = meter.feed(chunk)
                if hangup.gone:
                    continue  # what was received is metered, nothing is sent
                if held or meter.state.finished or meter.may_end(out):
                    held += out
                elif out:
                    await send({"type": "http.response.body", "body": out, "more_body": True})
                    delivered.append(out)
        except (TimeoutError, UpstreamError):
            broken = True
        if hangup.gone:
            await self._bill_hangup(call, meter)
            return
        if not broken:
            held += meter.finish()
        usage = meter.usage()
        try:
            if usage is None:
                cost = await self.billing.settle(call, meter.partial_usage(), _NO_USAGE)
            else:
                cost = await self.billing.settle(call, usage)
        except KakinError as error:
            # The charge could not be recorded (the ledger is unreachable): the final events are
            # never sent, so the client has no complete answer, and the stream ends with the error.
            await send(_last(stream_error_event(call.api, error.status, error.message, code=error.code)))
            return
        await self.objects.streamed(call.caller.key, call.parsed, meter.state)
        tail = meter.stamp(held, self._receipt(call, cost))
        if broken:
            tail += stream_error_event(call.api, 502, f"{call.provider.name} broke off the stream")
        await send(_last(tail))
        if not broken and usage is not None:
            # A retry with the Idempotency-Key gets this very answer, kakin's fields included (the
            # charge it names is the one and only); a cache hit is another request, free: the
            # answer without them.
            if ckey:
                body = b"".join([*delivered, held])
                await self.answers.remember(ckey, call, response.status, content_type, body, cost)
            if call.idempotency_key:
                body = b"".join([*delivered, tail])
                await self.answers.keep_for_replay(call, response.status, content_type, body, cost)

    async def _bill_hangup(self, call: Call, meter: StreamMeter) -> None:
        """The client left mid-stream: bill the provider's final usage if it came, else what
        was produced until the upstream was stopped (input, and the output received). A request
        that never left the gateway is not billed."""
        if not call.forwarded:
            await self.billing.void(call)
            return
        usage = meter.usage()
        if usage is None:
            await self.billing.settle(call, meter.partial_usage(), _HUNG_UP)
        else:
            await self.billing.settle(call, usage)
        # A response stored upstream before the hang-up is still its project's own.
        await self.objects.streamed(call.caller.key, call.parsed, meter.state)

    def _receipt(self, call: Call, cost: Decimal) -> dict[str, str]:
        """kakin's fields in a stream's final event: what the headers say for a complete answer."""
        receipt = {"request_id": call.request_id, "cost_usd": decimal_str(cost)}
        credit = self.billing.credit_left(call)
        if credit is not None:
            receipt["credit_remaining_usd"] = decimal_str(credit)
        return receipt

    async def forward_unbilled(self, call: Call, headers: dict[str, str], send: Send) -> None:
        """Operations the provider does not charge for (models, countTokens, reading, listing
        or deleting stored objects)."""
        content_type = "application/json"

        async def fetch(parsed: ParsedRequest) -> tuple[int, bytes]:
            nonlocal content_type
            up = upstream_request(parsed, api_version=call.provider.api_version or None)
            response = await self._open(call, up, headers)
            try:
                body = await response.read()
            finally:
                response.release()
            content_type = response.headers.get("content-type", content_type)
            return response.status, body

        status, body = await fetch(call.parsed)
        body = await self.objects.answered(call.caller.key, call.parsed, status, body, fetch)
        await respond(
            send,
            status,
            body,
            content_type,
            [("x-kakin-request-id", call.request_id), ("x-kakin-cost-usd", "0")],
        )


# Why a charge is not the usage the provider reported (a note among the cost items).
_NO_USAGE = "the provider reported no usage; charged kakin's own count"
_HUNG_UP = (
    "the client hung up before the provider reported usage; the provider was stopped and "
    "kakin charged its own count of the input and of the output produced until then"
)


def _last(body: bytes) -> dict[str, Any]:
    return {"type": "http.response.body", "body": body, "more_body": False}
