import json

import numpy as np
import pytest

from privcrypt.cli import main

pytest.importorskip("PIL")


def test_image_cli_round_trip(tmp_path, capsys):
    from imaging.cli import read_image, write_image

    img = (np.add.outer(np.arange(33), np.arange(20)) * 3 % 256).astype(np.uint8)
    rgb = np.stack([img, img[::-1], 255 - img], axis=2)
    key = tmp_path / "k.key"
    assert main(["image", "keygen", "--out", str(key), "--json"]) == 0
    assert (key.stat().st_mode & 0o777) == 0o600
    assert main(["image", "keygen", "--out", str(key)]) == 2  # no silent overwrite
    for name, arr, extra in [("g", img, []), ("c", rgb, ["--diffusion"])]:
        src, ct, out = tmp_path / f"{name}.png", tmp_path / f"{name}.flep", tmp_path / f"{name}_d.png"
        write_image(src, arr)
        assert main(["image", "encrypt", "--key", str(key), "--in", str(src), "--out", str(ct),
                     "--sigma", "0", "--render", str(tmp_path / f"{name}_c.png"), *extra]) == 0
        assert main(["image", "decrypt", "--key", str(key), "--in", str(ct), "--out", str(out)]) == 0
        assert np.array_equal(read_image(out), arr)
    capsys.readouterr()
    assert main(["image", "metrics", str(tmp_path / "g.png"), str(tmp_path / "g_d.png"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["wu"]["npcr"] == 0.0 and res["psnr"] is None and res["nonfinite"]["psnr"] == "inf"
    # a truncated cipher file is a clean error
    (tmp_path / "t.flep").write_bytes((tmp_path / "g.flep").read_bytes()[:50])
    assert main(["image", "decrypt", "--key", str(key), "--in", str(tmp_path / "t.flep"), "--out", str(out)]) == 2
    key2 = tmp_path / "k2.key"
    main(["image", "keygen", "--out", str(key2)])
    assert main(["image", "decrypt", "--key", str(key2), "--in", str(tmp_path / "g.flep"), "--out", str(out)]) == 2


def test_keygen_force_gives_mode_0600_and_replaces_a_symlink(tmp_path):
    import os
    import stat

    from privcrypt.cli import main

    key = tmp_path / "k.key"
    key.write_bytes(b"old")
    key.chmod(0o644)
    assert main(["image", "keygen", "--out", str(key), "--force"]) == 0
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_bytes()) == 35
    target = tmp_path / "victim"
    link = tmp_path / "link.key"
    link.symlink_to(target)
    assert main(["image", "keygen", "--out", str(link)]) == 2  # exists (as a link): refused
    assert main(["image", "keygen", "--out", str(link), "--force"]) == 0
    assert not target.exists() and not link.is_symlink()  # the link itself was replaced
    assert stat.S_IMODE(os.stat(link).st_mode) == 0o600
