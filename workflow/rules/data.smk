# download -> [train_face_detector] -> faces -> split -> prepare@<size> (see dvc.yaml for the same stages).
# Code inputs are each stage's import closure (deepfake_detection.stagedeps), file by file.


rule download:
    input:
        code_deps("download"),
    output:
        directory("data/raw/{source}"),
        "metrics/download/{source}.json",
    log:
        "logs/download/{source}.log",
    params:
        params_yaml=read_keys("sources.{source}.kind", "sources.{source}.options"),
    shell:
        "python stages/download.py --source {wildcards.source} --out data/raw/{wildcards.source}"
        " --summary metrics/download/{wildcards.source}.json --partial-dir data/partial/{wildcards.source}"
        " 2> {log}"


rule train_face_detector:
    input:
        code_deps("train_face_detector"),
        lambda w: f"data/raw/{trained_detector_config()['source']}",
    output:
        "data/models/face_detector.pt",
        "metrics/face_detector.json",
    log:
        "logs/train_face_detector.log",
    threads: workflow.cores
    params:
        params_yaml=read_keys(f"face_detectors.{TRAINED_DETECTOR}"),
        coco=lambda w: "data/raw/{source}/{coco_subdir}".format(**trained_detector_config()),
        train_split=trained_detector("train_split"),
        eval_split=trained_detector("eval_split"),
    shell:
        f"python stages/train_face_detector.py --detector {TRAINED_DETECTOR}"
        " --coco-train {params.coco}/{params.train_split}_poly.json"
        " --coco-val {params.coco}/{params.eval_split}_poly.json"
        " --images-root {params.coco}"
        " --out data/models/face_detector.pt --metrics metrics/face_detector.json 2> {log}"


# dvc.yaml's faces@<source> and faces_yolo@<source>: the weights are an input (and an argument)
# only for the sources face_stages.faces_yolo lists.
rule faces:
    input:
        code_deps("faces"),
        "data/raw/{source}",
        weights=lambda w: ["data/models/face_detector.pt"] if uses_trained_detector(w) else [],
    output:
        directory("data/faces/{source}/images"),
        "data/faces/{source}/faces.csv",
        "data/faces/{source}/rejects.csv",
        "data/faces/{source}/known_duplicates.csv",
        "metrics/faces/{source}.json",
    log:
        "logs/faces/{source}.log",
    params:
        params_yaml=read_keys("faces", "sources.{source}.datasets"),
        weights_arg=lambda w: " --detector-weights data/models/face_detector.pt" if uses_trained_detector(w) else "",
    shell:
        "python stages/faces.py --source {wildcards.source} --raw data/raw/{wildcards.source}"
        " --out data/faces/{wildcards.source} --metrics metrics/faces/{wildcards.source}.json"
        "{params.weights_arg} 2> {log}"


rule split:
    input:
        code_deps("split"),
        expand("data/faces/{source}/faces.csv", source=SOURCES),
        expand("data/faces/{source}/known_duplicates.csv", source=SOURCES),
        expand("data/raw/{source}", source=SOURCES),
    output:
        "data/splits/manifest.csv",
        "data/splits/duplicates.csv",
        "data/splits/excluded.csv",
        "metrics/split.json",
    log:
        "logs/split.log",
    params:
        params_yaml=read_keys("enabled_sources", "split"),
    shell:
        "python stages/split.py --faces-root data/faces --out data/splits/manifest.csv"
        " --duplicates data/splits/duplicates.csv --excluded data/splits/excluded.csv"
        " --metrics metrics/split.json 2> {log}"


# prepare@<size> for each size in prepare.sizes (the variants' prepared_size values).
rule prepare:
    input:
        code_deps("prepare"),
        "data/splits/manifest.csv",
        expand("data/faces/{source}/images", source=SOURCES),
    output:
        directory("data/prepared/{size}"),
    log:
        "logs/prepare/{size}.log",
    params:
        params_yaml=read_keys("prepare.sizes"),
    shell:
        "python stages/prepare.py --manifest data/splits/manifest.csv --size {wildcards.size}"
        " --out data/prepared/{wildcards.size} 2> {log}"
