"""Face boxes and crops: COCO boxes, whole images, detectors."""
