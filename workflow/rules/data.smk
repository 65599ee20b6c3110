# download -> faces -> split -> prepare (see dvc.yaml for the same stages).


rule download:
    input:
        code(
            "stages/download.py",
            "deepfake_detection/data/demo.py",
            "deepfake_detection/data/exact_ops.py",
            "deepfake_detection/io.py",
            "deepfake_detection/data/sources",
        ),
    output:
        directory("data/raw/{source}"),
        "metrics/download/{source}.json",
    log:
        "logs/download/{source}.log",
    params:
        source=lambda w: {k: config["sources"][w.source][k] for k in ("kind", "options")},
    conda:
        "../../environment.yml"
    shell:
        "python stages/download.py --source {wildcards.source} --out data/raw/{wildcards.source}"
        " --summary metrics/download/{wildcards.source}.json --partial-dir data/partial/{wildcards.source}"
        " 2> {log}"


rule train_face_detector:
    input:
        code(
            "stages/train_face_detector.py",
            "deepfake_detection/faces/yolo.py",
            "deepfake_detection/faces/boxes.py",
        ),
        f"data/raw/{FD['source']}",
    output:
        "data/models/face_detector.pt",
        "metrics/face_detector.json",
    log:
        "logs/train_face_detector.log",
    threads: workflow.cores
    params:
        face_detector=FD,
        coco=f"data/raw/{FD['source']}/{FD['coco_subdir']}",
    conda:
        "../../environment.yml"
    shell:
        "python stages/train_face_detector.py"
        " --coco-train {params.coco}/{params.face_detector[train_split]}_poly.json"
        " --coco-val {params.coco}/{params.face_detector[eval_split]}_poly.json"
        " --images-root {params.coco}"
        " --out data/models/face_detector.pt --metrics metrics/face_detector.json 2> {log}"


rule faces:
    input:
        code(
            "stages/faces.py",
            "deepfake_detection/faces",
            "deepfake_detection/data/adapters.py",
            "deepfake_detection/data/manifest.py",
            "deepfake_detection/io.py",
        ),
        "data/raw/{source}",
        "data/models/face_detector.pt",
    output:
        directory("data/faces/{source}/images"),
        "data/faces/{source}/faces.csv",
        "data/faces/{source}/rejects.csv",
        "metrics/faces/{source}.json",
    log:
        "logs/faces/{source}.log",
    params:
        faces=config["faces"],
        datasets=lambda w: config["sources"][w.source]["datasets"],
    conda:
        "../../environment.yml"
    shell:
        "python stages/faces.py --source {wildcards.source} --raw data/raw/{wildcards.source}"
        " --out data/faces/{wildcards.source} --metrics metrics/faces/{wildcards.source}.json"
        " --detector-weights data/models/face_detector.pt 2> {log}"


rule split:
    input:
        code(
            "stages/split.py",
            "deepfake_detection/data/split.py",
            "deepfake_detection/data/dedup.py",
            "deepfake_detection/data/manifest.py",
            "deepfake_detection/io.py",
        ),
        expand("data/faces/{source}/faces.csv", source=SOURCES),
    output:
        "data/splits/manifest.csv",
        "data/splits/duplicates.csv",
        "metrics/split.json",
    log:
        "logs/split.log",
    params:
        enabled_sources=config["enabled_sources"],
        split=config["split"],
    conda:
        "../../environment.yml"
    shell:
        "python stages/split.py --faces-root data/faces --out data/splits/manifest.csv"
        " --duplicates data/splits/duplicates.csv --metrics metrics/split.json 2> {log}"


rule prepare:
    input:
        code(
            "stages/prepare.py",
            "deepfake_detection/data/prepared.py",
            "deepfake_detection/io.py",
        ),
        "data/splits/manifest.csv",
        expand("data/faces/{source}/images", source=SOURCES),
    output:
        directory("data/prepared"),
    log:
        "logs/prepare.log",
    params:
        prepare=config["prepare"],
    conda:
        "../../environment.yml"
    shell:
        "python stages/prepare.py --manifest data/splits/manifest.csv --out data/prepared 2> {log}"
