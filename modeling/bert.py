"""BERT for sequence classification as a tree of torch modules, without transformers'
model code: the modules, parameter names, buffers and head initialization of
transformers' BertForSequenceClassification, so the state dict, the saved folder and the
logits are the same as that class's.

Why: importing transformers' model classes (its modeling_utils brings in
torch.distributed.tensor, torch._dynamo and text generation) costs every command more
time than loading the model. A classification run needs only the modules: their forward
pass is this project's own (`forward.classifier_logits`, which `forward` calls), and
its `save_pretrained` writes what transformers' writes (config.json with the class's name, the
weights as model.safetensors), so transformers, `pipeline` and this project load it as
transformers' own. `to_transformers` builds transformers' class where its own forward is
needed (the ONNX export, extract_features.py). Other model families come through
transformers (`families`).
"""

import os

import torch
from torch import nn

from .disk import write_file

CLASS_NAME = "BertForSequenceClassification"  # what config.json's `architectures` records
WEIGHTS_FILE = "model.safetensors"
# hidden_act -> module, exactly transformers' ACT2FN entries (tested); other names are
# looked up in ACT2FN itself.
ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU, "swish": nn.SiLU,
               "tanh": nn.Tanh, "gelu_pytorch_tanh": lambda: nn.GELU(approximate="tanh")}


def activation(hidden_act) -> nn.Module:
    if callable(hidden_act):
        return hidden_act
    if hidden_act in ACTIVATIONS:
        return ACTIVATIONS[hidden_act]()
    from transformers.activations import ACT2FN
    return ACT2FN[hidden_act]


class Linear(nn.Linear):
    """nn.Linear left undrawn: the checkpoint fills it in (`init_head` draws a new head)."""

    def reset_parameters(self) -> None:
        pass


class Embedding(nn.Embedding):
    """nn.Embedding left undrawn: the checkpoint fills it in."""

    def reset_parameters(self) -> None:
        pass


class BertEmbeddings(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.word_embeddings = Embedding(config.vocab_size, config.hidden_size,
                                         padding_idx=config.pad_token_id)
        self.position_embeddings = Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        positions = torch.arange(config.max_position_embeddings).expand((1, -1))
        self.register_buffer("position_ids", positions, persistent=False)
        self.register_buffer("token_type_ids", torch.zeros_like(positions), persistent=False)


class BertSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        if config.hidden_size % config.num_attention_heads:
            raise ValueError(f"The hidden size ({config.hidden_size}) is not a multiple of the "
                             f"number of attention heads ({config.num_attention_heads})")
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.hidden_size // config.num_attention_heads
        self.all_head_size = self.num_attention_heads * self.attention_head_size
        self.scaling = self.attention_head_size ** -0.5
        self.query = Linear(config.hidden_size, self.all_head_size)
        self.key = Linear(config.hidden_size, self.all_head_size)
        self.value = Linear(config.hidden_size, self.all_head_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)


class BertOutput(nn.Module):
    """Dense, dropout, residual, LayerNorm (BertSelfOutput and BertOutput)."""

    def __init__(self, config, width: int):
        super().__init__()
        self.dense = Linear(width, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)


class BertAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertOutput(config, config.hidden_size)


class BertIntermediate(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = activation(config.hidden_act)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.intermediate_act_fn(self.dense(hidden_states))


class BertLayer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config, config.intermediate_size)


class BertEncoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))


class BertPooler(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()


class BertModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config)


class BertClassifier(nn.Module):
    """transformers' BertForSequenceClassification's modules; `forward` gives the logits.
    Its weights are allocated, not drawn: `model.build_model` loads them."""

    def __init__(self, config):
        super().__init__()
        self.config, self.num_labels = config, config.num_labels
        self.bert = BertModel(config)
        dropout = config.classifier_dropout
        self.dropout = nn.Dropout(config.hidden_dropout_prob if dropout is None else dropout)
        self.classifier = Linear(config.hidden_size, config.num_labels)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.bert.embeddings.word_embeddings

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> torch.Tensor:
        from .forward import classifier_logits
        return classifier_logits(self, input_ids, attention_mask, token_type_ids)

    @property
    def dtype(self) -> torch.dtype:
        return next(p.dtype for p in self.parameters() if p.is_floating_point())

    def save_pretrained(self, folder: str) -> None:
        """What transformers' `save_pretrained` writes for the model: config.json (recording
        the class and the weights' dtype) and model.safetensors."""
        self.config.dtype = str(self.dtype).split(".")[1]
        self.config.architectures = [CLASS_NAME]
        self.config.save_pretrained(folder)
        write_file(os.path.join(folder, WEIGHTS_FILE), weights_bytes(self))


def init_head(model: BertClassifier) -> None:
    """Draws a new classifier head as transformers' `_init_weights` draws a Linear (the same
    draw from torch's generator, so one seed gives the same head either way)."""
    with torch.no_grad():
        model.classifier.weight.normal_(mean=0.0, std=model.config.initializer_range)
        model.classifier.bias.zero_()


def weights_bytes(model: nn.Module) -> bytes:
    """The model's state dict as safetensors' bytes, as `save_pretrained` writes them (a
    checkpoint's weights are the same bytes, so the same weights are written once)."""
    from safetensors.torch import save
    weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    return save(weights, metadata={"format": "pt"})


def to_transformers(model: BertClassifier):
    """transformers' BertForSequenceClassification with the model's config and weights."""
    from transformers import BertConfig, BertForSequenceClassification
    from transformers.initialization import no_init_weights
    with no_init_weights():
        hf = BertForSequenceClassification(BertConfig.from_dict(model.config.to_dict()))
    hf.load_state_dict(model.state_dict())  # (its position buffers are made as ours)
    return hf.to(next(model.parameters()).device).train(model.training)
