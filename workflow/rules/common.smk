# Helpers shared by the rule files.


def read_keys(*keys):
    """The params.yaml entries a job reads, as {dotted key: value}: the same keys as the stage's
    dvc.yaml ``params``, so an edit elsewhere in params.yaml does not rerun it. A key may hold
    wildcards ("sources.{source}.datasets"); tests/test_runners.py compares the keys."""

    def values(wildcards):
        out = {}
        for key in keys:
            key = key.format(**wildcards)
            value = config
            for part in key.split("."):
                value = value[part]
            out[key] = value
        return out

    return values


def trained_detector_config():
    """face_detectors.yolo, read only when a faces_yolo job asks for the detector it trains."""
    return config["face_detectors"][TRAINED_DETECTOR]


def trained_detector(key):
    return lambda wildcards: trained_detector_config()[key]


def uses_trained_detector(wildcards):
    """Whether faces@<source> is dvc.yaml's faces_yolo@<source> (face_stages.faces_yolo)."""
    return wildcards.source in YOLO_SOURCES


def prepared_dir(wildcards):
    """data/prepared/<size> of the variant's prepared_size (dvc.yaml: ${item.prepared_size})."""
    return f"data/prepared/{config['variants'][wildcards.variant]['prepared_size']}"


def gan_prepared_dir(wildcards):
    """data/prepared/<size> of the GAN variant's prepared_size (dvc.yaml: ${item.prepared_size})."""
    return f"data/prepared/{config['gan_variants'][wildcards.gan_variant]['prepared_size']}"


def fid_prepared_dir(wildcards):
    """data/prepared/<gan.prepared_size>: the held-out real faces' array (dvc.yaml: ${gan.prepared_size})."""
    return f"data/prepared/{config['gan']['prepared_size']}"
