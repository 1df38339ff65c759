"""Names of the files a saved model folder holds beside transformers' own."""

# The exported models in output_dir, by --export value and by --predict_backend value.
ONNX_FILES = {"onnx": "model.onnx", "onnx_int8": "model_int8.onnx",
              "onnxruntime": "model.onnx", "onnxruntime_int8": "model_int8.onnx"}
