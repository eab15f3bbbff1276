"""Images, audio and moderations through the real gunicorn gateway with the real `openai` SDK: the
fake providers check what they receive; speech comes back as it is sent; an upload of several MB
reaches the provider whole, with the model rewritten, without the worker holding it in memory."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import requests
from werkzeug.formparser import parse_form_data

from tests.api.conftest import GATEWAY_KEY, PROVIDER_KEYS, access_line, ledger_rows, request_id
from tests.support.fake_provider import Recorded, Reply, json_reply, sse_reply
from tests.support.gunicorn_master import children

IMAGE = {"created": 1700000000, "data": [{"b64_json": "aGVsbG8="}],
         "usage": {"input_tokens": 50, "output_tokens": 4160, "total_tokens": 4210,
                   "input_tokens_details": {"text_tokens": 50, "image_tokens": 0}}}
TRANSCRIPT = {"text": "Hello from the upload.",
              "usage": {"type": "tokens", "input_tokens": 300, "output_tokens": 7, "total_tokens": 307}}


@pytest.fixture
def sdk(gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=GATEWAY_KEY, max_retries=0, timeout=60) as client:
        yield client


def form_of(recorded: Recorded) -> tuple[dict[str, str], dict[str, bytes]]:
    """A multipart body as the provider reads it: its text fields and its files' bytes."""
    environ = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": recorded.headers["content-type"],
               "CONTENT_LENGTH": str(len(recorded.body)), "wsgi.input": io.BytesIO(recorded.body)}
    _, form, files = parse_form_data(environ, max_content_length=None)
    return dict(form.items()), {name: part.read() for name, part in files.items()}


def test_image_generation_forwards_and_counts_tokens(sdk, gateway, fakes):
    fakes.openai.on("POST", "/v1/images/generations", json_reply(IMAGE))
    rid = request_id()
    image = sdk.images.generate(model="openai/gpt-image-1", prompt="a lighthouse at dusk", size="1024x1024",
                                quality="low", extra_headers={"X-Request-ID": rid})
    assert image.data[0].b64_json == "aGVsbG8="
    sent = fakes.openai.requests[-1]
    assert sent.path == "/v1/images/generations"
    assert sent.headers["authorization"] == f"Bearer {PROVIDER_KEYS['openai']}"
    assert sent.json() == {"model": "gpt-image-1", "prompt": "a lighthouse at dusk", "size": "1024x1024",
                           "quality": "low"}
    usage = access_line(gateway, rid)["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (50, 4160, 4210)


def test_image_stream_events_pass_through(sdk, fakes):
    events = [{"type": "image_generation.partial_image", "b64_json": "cGFydA==", "partial_image_index": 0},
              {"type": "image_generation.completed", "b64_json": "ZnVsbA==", "usage": IMAGE["usage"]}]
    fakes.openai.on("POST", "/v1/images/generations", sse_reply(events, done=False))
    stream = sdk.images.generate(model="openai/gpt-image-1", prompt="x", stream=True, partial_images=1)
    assert [event.type for event in stream] == ["image_generation.partial_image", "image_generation.completed"]


def test_speech_comes_back_as_the_provider_sends_it(sdk, gateway, fakes):
    first, rest = b"ID3\x04" + os.urandom(4000), os.urandom(60000)
    gate = threading.Event()
    fakes.openai.on("POST", "/v1/audio/speech", Reply(headers={"Content-Type": "audio/mpeg"}, chunks=[first, rest],
                                                      pauses=[0, gate]))
    rid = request_id()
    with sdk.audio.speech.with_streaming_response.create(model="openai/gpt-4o-mini-tts", voice="coral",
                                                         input="Hello there", response_format="mp3",
                                                         extra_headers={"X-Request-ID": rid}) as response:
        assert response.headers["content-type"] == "audio/mpeg"
        chunks = response.iter_bytes()
        received = b""
        while len(received) < len(first):  # the first chunk arrives while the provider holds the rest
            received += next(chunks)
        gate.set()
        received += b"".join(chunks)
    assert received == first + rest
    assert fakes.openai.requests[-1].json() == {"model": "gpt-4o-mini-tts", "voice": "coral", "input": "Hello there",
                                                "response_format": "mp3"}
    # speech reports no tokens: the ledger still has the request, with zero tokens
    rows = ledger_rows(gateway, rid)
    assert [(row["endpoint"], row["provider"], row["model"], row["total_tokens"]) for row in rows] == [
        ("/v1/audio/speech", "openai", "gpt-4o-mini-tts", 0)]


def test_speech_a_provider_does_not_offer_is_501(sdk, fakes):
    with pytest.raises(openai.APIStatusError) as info:
        sdk.audio.speech.create(model="mistral/voxtral", voice="x", input="hi")
    assert info.value.status_code == 501
    assert fakes.mistral.requests == []


def test_a_transcription_upload_of_several_mb_reaches_the_provider_whole(sdk, gateway, fakes):
    audio = os.urandom(6 * 1024 * 1024)
    fakes.openai.on("POST", "/v1/audio/transcriptions", json_reply(TRANSCRIPT))
    rid = request_id()
    transcript = sdk.audio.transcriptions.create(model="openai/gpt-4o-transcribe", file=("speech.wav", audio),
                                                 language="en", prompt="A greeting.",
                                                 extra_headers={"X-Request-ID": rid})
    assert transcript.text == "Hello from the upload."
    sent = fakes.openai.requests[-1]
    assert sent.path == "/v1/audio/transcriptions"
    assert sent.headers["authorization"] == f"Bearer {PROVIDER_KEYS['openai']}"
    assert int(sent.headers["content-length"]) == len(sent.body)  # framed by its exact length, not chunked
    form, files = form_of(sent)
    assert form == {"model": "gpt-4o-transcribe", "language": "en", "prompt": "A greeting."}
    assert hashlib.sha256(files["file"]).digest() == hashlib.sha256(audio).digest()
    usage = access_line(gateway, rid)["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (300, 7)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK marks translations deprecated; the API serves them
def test_a_translation_goes_to_groq_and_the_model_is_checked(sdk, fakes):
    fakes.groq.on("POST", "/openai/v1/audio/translations", json_reply({"text": "Hello"}))
    assert sdk.audio.translations.create(model="groq/whisper-large-v3", file=("a.mp3", b"\xff\xfb" * 500)).text == "Hello"
    form, files = form_of(fakes.groq.requests[-1])
    assert form["model"] == "whisper-large-v3" and files["file"] == b"\xff\xfb" * 500
    with pytest.raises(openai.PermissionDeniedError):
        sdk.audio.translations.create(model="openai/forbidden", file=("a.mp3", b"x"))
    with pytest.raises(openai.APIStatusError) as info:  # Mistral transcribes but does not translate
        sdk.audio.translations.create(model="mistral/voxtral-mini-latest", file=("a.mp3", b"x"))
    assert info.value.status_code == 501
    assert fakes.openai.requests == [] and fakes.mistral.requests == []


def test_a_malformed_upload_is_a_clear_400(gateway, fakes):
    headers = {"Authorization": f"Bearer {GATEWAY_KEY}"}
    url = gateway.url + "/v1/audio/transcriptions"
    no_model = requests.post(url, headers=headers, files={"file": ("a.wav", b"RIFF")}, timeout=10)
    assert no_model.status_code == 400 and "model" in no_model.json()["error"]["message"]
    no_file = requests.post(url, headers=headers, files={"model": (None, "openai/whisper-1")}, timeout=10)
    assert no_file.status_code == 400 and "file" in no_file.json()["error"]["message"]
    not_multipart = requests.post(url, headers=headers, json={"model": "openai/whisper-1"}, timeout=10)
    assert not_multipart.status_code == 400 and not_multipart.json()["error"]["code"] == "invalid_multipart"
    cut = requests.post(url, data=b"--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nopenai/x",
                        headers={**headers, "Content-Type": "multipart/form-data; boundary=b"}, timeout=10)
    assert cut.status_code == 400 and cut.json()["error"]["code"] == "invalid_multipart"
    assert fakes.openai.requests == []


def test_moderations(sdk, gateway, fakes):
    result = {"id": "modr-1", "model": "omni-moderation-latest",
              "results": [{"flagged": False, "categories": {}, "category_scores": {}}]}
    fakes.openai.on("POST", "/v1/moderations", json_reply(result))
    rid = request_id()
    moderated = sdk.moderations.create(model="openai/omni-moderation-latest", input=["one", "two"],
                                       extra_headers={"X-Request-ID": rid})
    assert moderated.results[0].flagged is False
    assert fakes.openai.requests[-1].json() == {"model": "omni-moderation-latest", "input": ["one", "two"]}
    assert access_line(gateway, rid)["provider"] == "openai"


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def test_a_multi_mb_upload_raises_the_workers_memory_by_less_than_2_mb(live_gateway, fakes):
    """24 MB uploads passed on by the one worker of a gateway of their own. Its resident memory
    (VmRSS) is taken once small uploads (one spooled to disk) have run every code path; then, for
    each big upload, when the provider has received all of it (read in the provider's handler,
    while the worker waits for the answer): it stays within 2 MB of that baseline. Its peak
    (VmHWM, reset at the baseline) stays far below the upload's size: a worker that held an upload,
    even for a moment, would peak at least 24 MB higher."""
    gateway = live_gateway({"OPENAI_API_URL": fakes.openai.url + "/v1", "OPENAI_API_KEY": PROVIDER_KEYS["openai"],
                            "SERVER_MAX_REQUEST_BODY_SIZE": "40MiB", "SERVER_WRITE_TIMEOUT": "1s"})
    (worker,) = children(gateway.process.pid)
    during: list[int] = []

    def measured(recorded: Recorded) -> Reply:
        during.append(memory_kib(worker, "VmRSS"))
        return json_reply(TRANSCRIPT)

    fakes.openai.on("POST", "/v1/audio/transcriptions", measured)
    audio = os.urandom(24 * 1024 * 1024)
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, timeout=60) as sdk:
        for size in (64 * 1024, 64 * 1024, 700 * 1024):
            sdk.audio.transcriptions.create(model="openai/whisper-1", file=("warm.wav", os.urandom(size)))
        baseline = memory_kib(worker, "VmRSS")
        Path(f"/proc/{worker}/clear_refs").write_text("5")  # VmHWM := VmRSS
        for attempt in range(3):
            sdk.audio.transcriptions.create(model="openai/whisper-1", file=(f"take-{attempt}.wav", audio))
            assert len(fakes.openai.requests[-1].body) > len(audio)
        peak = memory_kib(worker, "VmHWM")
    grown = [rss - baseline for rss in during[-3:]]
    assert max(grown) < 2048, f"the worker grew by {grown} KiB while passing 24 MB uploads on"
    assert peak - baseline < 12 * 1024, f"the worker's memory peaked {peak - baseline} KiB higher"
