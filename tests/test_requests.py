import pytest

from studio.core.errors import InvalidRequest
from studio.core.requests import ImageRequest, MusicRequest, TextRequest, request_from_dict


def test_round_trip_keeps_every_parameter():
    request = TextRequest(prompt="a poem", model="m", seed=7, stop=("END", "\n\n"), temperature=0.3)
    again = request_from_dict(request.to_dict())
    assert again == request
    assert request.to_dict()["kind"] == "text"


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: TextRequest(prompt="   ", model="m"), "prompt"),
        (lambda: TextRequest(prompt="x", model=""), "model"),
        (lambda: TextRequest(prompt="x", model="m", max_tokens=0), "max_tokens"),
        (lambda: TextRequest(prompt="x", model="m", top_p=0), "top_p"),
        (lambda: TextRequest(prompt="x", model="m", seed=-1), "seed"),
        (lambda: ImageRequest(prompt="x", model="m", width=500), "width"),
        (lambda: ImageRequest(prompt="x", model="m", height=16384), "height"),
        (lambda: ImageRequest(prompt="x", model="m", steps=True), "steps"),
        (lambda: MusicRequest(prompt="x", model="m", duration=0), "duration"),
        (lambda: MusicRequest(prompt="x", model="m", duration=float("nan")), "duration"),
    ],
)
def test_invalid_values_are_refused_with_the_field_named(make, field):
    with pytest.raises(InvalidRequest) as caught:
        make()
    assert caught.value.field == field
    assert str(caught.value)


def test_size_error_suggests_nearby_multiples_of_8():
    with pytest.raises(InvalidRequest, match="try 496 or 504"):
        ImageRequest(prompt="x", model="m", width=500)


def test_with_seed_makes_a_new_request():
    request = MusicRequest(prompt="calm", model="m")
    seeded = request.with_seed(42)
    assert request.seed is None and seeded.seed == 42


def test_from_dict_rejects_unknown_kind_and_ignores_unknown_keys():
    with pytest.raises(InvalidRequest):
        request_from_dict({"kind": "video", "prompt": "x", "model": "m"})
    request = request_from_dict({"kind": "music", "prompt": "x", "model": "m", "from_the_future": 1})
    assert isinstance(request, MusicRequest)
