"""Check what installer/smoke.sh made, with readers independent of the app.

python installer/check_smoke.py TEXT_JSON IMAGE_JSON MUSIC_JSON
"""

import json
import sys
from pathlib import Path

import soundfile
from PIL import Image


def main(text_json: str, image_json: str, music_json: str) -> int:
    text, image, music = (json.loads(j) for j in (text_json, image_json, music_json))
    body = Path(text["path"]).read_text(encoding="utf-8")
    assert text["model"] == "studio-starter-text" and len(body.split("---")[-1].split()) >= 3, body
    with Image.open(image["path"]) as picture:
        assert picture.size == (256, 256), picture.size
        assert "parameters" in picture.info  # the settings are embedded (A1111 text, with the record beside it)
    audio, rate = soundfile.read(music["path"])
    assert rate == 32000 and len(audio) / rate >= 5, (rate, len(audio))
    assert Path(music["path"]).with_suffix(".mid").read_bytes().startswith(b"MThd")
    for item in (text, image, music):
        sidecar = json.loads(Path(item["path"]).with_suffix(".json").read_text())
        assert sidecar["model"]["sha256"], f"no model hash for {item['kind']}"
        print(f"{item['kind']:6} {item['model']:26} {Path(item['path']).name}  ok")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:4]))
