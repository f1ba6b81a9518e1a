"""The sentence encoder: all-MiniLM-L6-v2 as int8 ONNX, run by onnxruntime where the board
wants it (placement.py: a plugin provider's device, or the CPU provider).

Only onnxruntime, tokenizers and numpy are needed here: pooling and normalisation live inside
the ONNX graph (models/export_router.py), so ``embed`` returns unit vectors and a dot product
is a cosine similarity. Everything in this module blocks; the router calls it from a thread.
"""

from __future__ import annotations

import hashlib
import logging
import platform
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from appliance import offline
from appliance.errors import ModelUnavailable, ProviderUnavailable, TelemetryNotOff
from appliance.router.placement import (
    CPU,
    Choice,
    Placement,
    Plugin,
    choose_device,
    cpu_offer,
    offers,
    placement_of,
)

log = logging.getLogger(__name__)

MODEL_FILE = "router.onnx"
TOKENIZER_FILE = "tokenizer.json"
SUMS_FILE = "SHA256SUMS"
DIMENSIONS = 384
MAX_TOKENS = 256  # the model's trained sequence limit; commands are far shorter

if TYPE_CHECKING:  # numpy.typing costs a start about 0.15 s of emulated time; types only
    import numpy.typing as npt

    Vectors: TypeAlias = npt.NDArray[np.float32]


def packaged_model_dir() -> Path:
    """The model files that ship inside the appliance package (built by ./build.sh model)."""
    return Path(str(resources.files("appliance.router") / "model"))


class Encoder:
    """Texts in, unit-length float32 embeddings out. Thread-safe: onnxruntime sessions allow
    concurrent ``run`` calls, and the tokenizer is only read."""

    def __init__(
        self,
        model_dir: Path | None = None,
        *,
        plugin: Plugin | None = None,
        devices: Sequence[str] = ("CPU",),
        strict: bool = False,
        threads: int = 1,
        verify: bool = True,
    ) -> None:
        """``plugin``: the board's plugin execution provider library, if any; ``devices``:
        the device types wanted for the model, most wanted first (placement.py)."""
        if offline.IMPORTED_TOO_EARLY:
            raise TelemetryNotOff(
                "onnxruntime was imported before the appliance, so its telemetry is on: "
                "import appliance first (or set ORT_DISABLE_TELEMETRY=1)"
            )
        model_dir = model_dir or packaged_model_dir()
        model, tokenizer = model_dir / MODEL_FILE, model_dir / TOKENIZER_FILE
        sums = verify_sums(model_dir, (MODEL_FILE, TOKENIZER_FILE)) if verify else {}
        try:
            self._tokenizer = Tokenizer.from_file(str(tokenizer))
        except Exception as err:  # tokenizers raises plain Exception for a bad or missing file
            raise ModelUnavailable(f"cannot load the router tokenizer {tokenizer}: {err}") from err
        self._tokenizer.enable_truncation(max_length=MAX_TOKENS)
        if not model.is_file():
            raise ModelUnavailable(f"no router model at {model}; build it with ./build.sh model")

        choice = choose_device(plugin, devices, strict=strict)
        self._session, choice = self._session_on(model, choice, plugin, threads, strict=strict)
        self.placement: Placement = placement_of(choice, devices, self._session)
        """Where the model really runs, as onnxruntime built the session."""
        self.provider: str = self.placement.provider
        device = self.placement.device
        self.model_path = model
        # a plugin's vectors depend on its device too; the CPU provider's fingerprint stays
        # as it was, so the phrase caches made before plugins (the image's seed) still match
        where = self.provider if self.provider == CPU else f"{self.provider} on {device}"
        self.fingerprint: str | None = (
            f"{sums[MODEL_FILE]}/{sums[TOKENIZER_FILE]}/{where}/onnxruntime "
            f"{ort.__version__}/{platform.machine()}"
            if sums
            else None
        )
        """What a vector depends on besides its text; None when the files were not checked."""
        if self.placement.fallback:
            log.warning("router: runs on %s", self.placement.summary())
        else:
            log.info("router: runs on %s", self.placement.summary())

    @staticmethod
    def _session_on(
        model: Path, choice: Choice, plugin: Plugin | None, threads: int, *, strict: bool
    ) -> tuple[ort.InferenceSession, Choice]:
        """The session on the chosen device. A plugin that cannot build it (an operator it
        lacks, a device that fails) leaves a strict board refused and any other on the CPU
        provider, saying why."""
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # one was faster than two for a ~10-token input
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # onnxruntime's own warnings go to stderr otherwise
        # which provider took which node: what placement_of reports
        options.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
        # int8 products summed exactly on every x86 CPU. Without it, onnxruntime's AVX2
        # kernels (no VNNI: a Zen 2 EPYC, say) add pairs of them in 16 bits, which saturate
        # (microsoft/onnxruntime#14642): a hard negative scored 0.362 there, over the 0.35
        # threshold, and 0.350 with the sums exact, as a VNNI CPU and an arm64 board make
        # them. No slower on that CPU (route p50 4.3 against 4.8 ms); only x86 reads it.
        options.add_session_config_entry("session.x64quantprecision", "1")
        offer = choice.offer
        if offer.provider == CPU:
            try:
                return ort.InferenceSession(str(model), options, providers=[CPU]), choice
            except Exception as err:  # onnxruntime raises its own Fail/InvalidProtobuf
                raise ModelUnavailable(f"cannot load the router model {model}: {err}") from err
        if strict:  # every node on the wanted device, none quietly on the CPU
            options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
        try:
            options.add_provider_for_devices([offer.handle], plugin.options if plugin else {})
            return ort.InferenceSession(str(model), options), choice
        except Exception as err:  # onnxruntime raises its own Fail/RuntimeError
            why = f"{offer.provider} on {offer.device} cannot run the router model: {err}"
            if strict:
                raise ProviderUnavailable(f"strict mode: {why}") from err
        return Encoder._session_on(
            model, Choice(cpu_offer(offers()), why), None, threads, strict=False
        )

    def embed(self, texts: Sequence[str]) -> Vectors:
        """One unit vector per text (shape ``len(texts) x 384``); blocks for ~1 ms a text.

        Texts run one at a time, never padded into a batch: the int8 model quantises its
        activations per run, so a text's vector would otherwise depend on its batch-mates
        (and a type registered later would embed differently from one registered at start).
        """
        vectors = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        for i, encoding in enumerate(self._tokenizer.encode_batch(list(texts))):
            ids = np.array([encoding.ids], dtype=np.int64)
            mask = np.array([encoding.attention_mask], dtype=np.int64)
            (out,) = self._session.run(["embedding"], {"input_ids": ids, "attention_mask": mask})
            vectors[i] = out[0]
        return vectors


def verify_sums(model_dir: Path, names: Sequence[str]) -> dict[str, str]:
    """Refuse model files whose sha256 differs from the SHA256SUMS beside them: a corrupt or
    half-written model would otherwise route every command somewhere, confidently wrong."""
    sums_file = model_dir / SUMS_FILE
    try:
        lines = sums_file.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise ModelUnavailable(f"cannot read {sums_file}: {err.strerror}") from err
    want = {parts[1]: parts[0] for parts in (line.split() for line in lines) if len(parts) >= 2}
    digests: dict[str, str] = {}
    for name in names:
        path = model_dir / name
        try:
            digest = file_sha256(path)
        except OSError as err:
            raise ModelUnavailable(
                f"no router model file {path} ({err.strerror}); build it with ./build.sh model"
            ) from err
        if want.get(name) != digest:
            raise ModelUnavailable(
                f"router model file {path} is corrupt or not the one recorded: sha256 {digest}, "
                f"{SUMS_FILE} says {want.get(name, 'nothing')}"
            )
        digests[name] = digest
    return digests


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
