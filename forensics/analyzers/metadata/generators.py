"""Signature rules for the metadata that image generators write about themselves.

Sources (see research/forensics.md §2.1): A1111/Forge ``parameters`` infotext, ComfyUI ``prompt``/``workflow``
JSON graphs, InvokeAI ``invokeai_*``/``sd-metadata``/``Dream``, NovelAI ``Software``/``Source``/``Comment``,
and generator names in EXIF, XMP ``CreatorTool`` and DICOM equipment fields. Messages name the tool and model,
never the prompt.
"""

from __future__ import annotations

import json
import re

from forensics.analyzers.metadata._common import snippet
from forensics.analyzers.metadata.codes import evidence
from forensics.records import Evidence

# Names specific enough that their presence in a writer field means the image came from that tool.
GENERATOR_NAMES = re.compile(
    r"stable[\s_-]?diffusion|\bsdxl\b|midjourney|\bdall[\s·\-_.]?e\b|adobe\s+firefly|comfyui|novel\s?ai|invoke\s?ai"
    r"|automatic1111|\ba1111\b|stable-diffusion-webui|fooocus|swarm\s?ui|draw\s?things|dreamstudio|leonardo\.ai"
    r"|ideogram|\bimagen\s?[0-9]|gpt-image|chatgpt|\bopenai\b|\bflux\.1|\bflux[\s\-_]?(?:1|dev|schnell|pro)\b"
    r"|black\s+forest\s+labs|stability(?:\.|\s)ai|bing\s+image\s+creator|kandinsky|deepfloyd|craiyon|nightcafe"
    r"|\bdiffusers\b|stylegan|\bdreambooth\b",
    re.IGNORECASE,
)
# A1111 "infotext": the settings line written under the prompt.
_INFOTEXT = re.compile(r"(?:^|\n|, )(?:Steps: \d+|Sampler: |CFG scale: |Seed: \d+)|Negative prompt: ")
_MODEL = re.compile(r"(?:^|, )Model: ([^,\n]{1,80})")
_MIDJOURNEY_DESC = re.compile(r"Job ID: [0-9a-f]{8}-[0-9a-f]{4}-")
_MAX_JSON = 4 << 20

INVOKEAI_KEYS = ("invokeai_metadata", "invokeai_workflow", "invokeai_graph", "sd-metadata", "Dream")
OTHER_GENERATOR_KEYS = {
    "fooocus_scheme": "Fooocus",
    "sui_image_params": "SwarmUI",
    "AIGC": "an AIGC label (GB 45438 generated-content marking)",
}
_WRITER_KEYS = ("Software", "Source", "Author", "Creator", "Generator", "Title", "Make", "Model")


def generator_name(text: str) -> str | None:
    """The generator name mentioned in ``text`` (as written), or None."""
    m = GENERATOR_NAMES.search(text[:4096])
    return m.group(0) if m else None


def is_infotext(text: str) -> bool:
    return bool(_INFOTEXT.search(text[:65536]))


def _json(text: str):
    if len(text) > _MAX_JSON:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _infotext_summary(text: str) -> str:
    m = _MODEL.search(text)
    return f" (model {snippet(m.group(1), 40)})" if m else ""


def png_text_rules(text: list[tuple[str, str, str]]) -> list[Evidence]:
    """Evidence from PNG text chunks, given as (keyword, value, chunk type)."""
    found: list[Evidence] = []
    values = {}
    for key, value, _ in text:
        values.setdefault(key, value)
    params = values.get("parameters")
    if params is not None:
        if is_infotext(params):
            found.append(
                evidence(
                    "png.a1111_parameters",
                    f"PNG text 'parameters' holds an A1111-style generation infotext{_infotext_summary(params)}",
                )
            )
        elif isinstance(_json(params), dict):
            found.append(
                evidence("png.a1111_parameters", "PNG text 'parameters' holds generation JSON (Fooocus-style)")
            )
        elif params.strip():
            found.append(evidence("png.parameters_text", "PNG text 'parameters' present (not a recognised infotext)"))
    prompt = values.get("prompt")
    if prompt is not None:
        graph = _json(prompt)
        nodes = [v for v in graph.values() if isinstance(v, dict)] if isinstance(graph, dict) else []
        classes = sorted({str(v.get("class_type")) for v in nodes if "class_type" in v})
        if classes or '"class_type"' in prompt:
            found.append(
                evidence(
                    "png.comfyui_prompt",
                    f"PNG text 'prompt' holds a ComfyUI graph ({len(nodes)} "
                    f"nodes, e.g. {snippet(', '.join(classes[:3]), 60) or 'class_type'})",
                )
            )
    workflow = values.get("workflow")
    if workflow is not None:
        graph = _json(workflow)
        if (isinstance(graph, dict) and "nodes" in graph) or ('"nodes"' in workflow and '"links"' in workflow):
            found.append(evidence("png.comfyui_workflow", "PNG text 'workflow' holds a ComfyUI workflow graph"))
    invoke = [k for k in INVOKEAI_KEYS if k in values]
    if invoke:
        found.append(evidence("png.invokeai", f"PNG text {', '.join(invoke)} written by InvokeAI"))
    software = values.get("Software", "")
    source = values.get("Source", "")
    comment = _json(values.get("Comment", "")) if "Comment" in values else None
    nai_comment = isinstance(comment, dict) and "uc" in comment and ("steps" in comment or "sampler" in comment)
    if software.strip().lower().startswith("novelai") or "novelai" in source.lower() or nai_comment:
        found.append(
            evidence(
                "png.novelai",
                f"PNG text Software/Source/Comment written by NovelAI"
                f"{' (' + snippet(source, 50) + ')' if source else ''}",
            )
        )
    other = [name for key, name in OTHER_GENERATOR_KEYS.items() if key in values]
    if other:
        found.append(evidence("png.generator_keys", f"PNG text keys written by {', '.join(other)}"))
    if not found:
        for key in _WRITER_KEYS:
            name = generator_name(values.get(key, ""))
            if name:
                found.append(evidence("png.text_generator", f"PNG text '{key}' names a generator: {snippet(name)}"))
                break
        else:
            desc = values.get("Description", "")
            if _MIDJOURNEY_DESC.search(desc) and " --" in desc:
                found.append(evidence("png.text_generator", "PNG text 'Description' has Midjourney job flags"))
    return found


def exif_rules(tags: dict[str, str], where: str = "EXIF") -> list[Evidence]:
    """Evidence from decoded EXIF text tags (see ``exif.read_exif``)."""
    found: list[Evidence] = []
    for key in ("Software", "Make", "Model", "Artist", "ImageDescription", "XPComment"):
        name = generator_name(tags.get(key, ""))
        if name:
            found.append(evidence("exif.software_generator", f"{where} {key} names a generator: {snippet(name)}"))
            break
    comment = tags.get("UserComment", "")
    if comment:
        if is_infotext(comment):
            found.append(
                evidence(
                    "exif.usercomment_generator",
                    f"{where} UserComment holds an A1111-style generation infotext{_infotext_summary(comment)}",
                )
            )
        else:
            name = generator_name(comment)
            if name:
                found.append(
                    evidence("exif.usercomment_generator", f"{where} UserComment names a generator: {snippet(name)}")
                )
    return found


def creator_tool_rules(tools: list[str]) -> list[Evidence]:
    for tool in tools:
        name = generator_name(tool)
        if name:
            return [evidence("xmp.creatortool_generator", f"XMP CreatorTool names a generator: {snippet(tool)}")]
    return []
