"""An independent reference forward pass of Keras' MobileNetV2 in numpy.

Written from the Keras 2.1 definition (keras/applications/mobilenetv2.py):
Conv2D with padding='same' (TensorFlow's SAME: out = ceil(in / stride), the
odd pixel of padding after), BatchNormalization with epsilon 1e-3, ReLU6,
DepthwiseConv2D, residual adds where stride is 1 and channels agree, global
average pooling and the Dense 'Logits' layer with softmax. Weights are read
with h5py, in Keras' own layouts (HWIO kernels, (k, k, C, 1) depthwise).
Nothing here comes from the project's code.
"""

import h5py
import numpy as np

# (expansion t, output channels c, repeats n, first stride s) of the paper.
SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
            (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
EPS = 1e-3


def same_pads(size, kernel, stride):
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


SYMMETRIC = [False]  # set by KerasMobileNetV2(symmetric_padding=True)


def pad_same(x, kernel, stride):
    """x: HWC."""
    if SYMMETRIC[0]:
        half = kernel // 2
        return np.pad(x, ((half, half), (half, half), (0, 0)))
    top, bottom = same_pads(x.shape[0], kernel, stride)
    left, right = same_pads(x.shape[1], kernel, stride)
    return np.pad(x, ((top, bottom), (left, right), (0, 0)))


def windows(x, k, stride):
    """The k x k shifted views of SAME-padded x (HWC) a convolution sums over:
    ((i, j), view) with view[y, x] = padded[i + stride * y, j + stride * x]."""
    p = pad_same(x, k, stride)
    out_h = (p.shape[0] - k) // stride + 1
    out_w = (p.shape[1] - k) // stride + 1
    for i in range(k):
        for j in range(k):
            yield (i, j), p[i:i + stride * out_h:stride, j:j + stride * out_w:stride]


def conv(x, kernel, stride=1):
    """Regular convolution, x HWC, kernel HWIO, SAME padding."""
    if kernel.shape[0] == 1:
        return x[::stride, ::stride] @ kernel[0, 0]
    return sum(view @ kernel[i, j] for (i, j), view in windows(x, kernel.shape[0], stride))


def depthwise(x, kernel, stride=1):
    """x HWC, kernel (k, k, C, 1), SAME padding."""
    return sum(view * kernel[i, j, :, 0]
               for (i, j), view in windows(x, kernel.shape[0], stride))


def keras21_names(block):
    """Keras 2.1's layer names of a block: (conv prefix, BatchNorm prefix)."""
    return ("mobl%d_conv_%d_" % (block, block),
            "bn%d_conv_%d_bn_" % (block, block))


def applications_names(block):
    """keras-applications / tf.keras: conv 'block_1_expand', BN
    'block_1_expand_BN'; block 0 is 'expanded_conv_'."""
    stem = "expanded_conv_" if block == 0 else "block_%d_" % block
    return stem, stem


class KerasMobileNetV2:
    def __init__(self, path, symmetric_padding=False):
        self.f = h5py.File(path, "r")
        root = self.f["model_weights"] if "model_weights" in self.f else self.f
        self.root = root
        self.applications = "expanded_conv_depthwise" in root
        self.head = "predictions" if "predictions" in root else "Logits"
        # For showing what TF's SAME changes: PyTorch's symmetric padding.
        self.symmetric = symmetric_padding

    def names(self, block, part):
        if self.applications:
            stem, _ = applications_names(block)
            return stem + part, stem + part + "_BN"
        conv_prefix, bn_prefix = keras21_names(block)
        return conv_prefix + part, bn_prefix + part

    def weight(self, layer, name):
        group = self.root[layer]
        for stored in group.attrs["weight_names"]:
            stored = stored.decode() if isinstance(stored, bytes) else stored
            if stored.endswith("/" + name):
                return np.asarray(group[stored], np.float64)
        raise KeyError(layer + "/" + name)

    def bn(self, x, layer):
        gamma = self.weight(layer, "gamma:0")
        beta = self.weight(layer, "beta:0")
        mean = self.weight(layer, "moving_mean:0")
        var = self.weight(layer, "moving_variance:0")
        return (x - mean) / np.sqrt(var + EPS) * gamma + beta

    def logits(self, image):
        """image: HWC float RGB already scaled to [-1, 1]."""
        SYMMETRIC[0] = self.symmetric
        relu6 = lambda v: np.clip(v, 0, 6)
        x = relu6(self.bn(conv(image.astype(np.float64),
                               self.weight("Conv1", "kernel:0"), 2),
                          "bn_Conv1"))
        block = 0
        for t, _, n, s in SETTINGS:
            for r in range(n):
                stride = s if r == 0 else 1
                y = x
                if t != 1:
                    c, b = self.names(block, "expand")
                    y = relu6(self.bn(conv(y, self.weight(c, "kernel:0")), b))
                c, b = self.names(block, "depthwise")
                y = relu6(self.bn(depthwise(
                    y, self.weight(c, "depthwise_kernel:0"), stride), b))
                c, b = self.names(block, "project")
                y = self.bn(conv(y, self.weight(c, "kernel:0")), b)
                if stride == 1 and y.shape[2] == x.shape[2]:
                    y = x + y
                x = y
                block += 1
        x = relu6(self.bn(conv(x, self.weight("Conv_1", "kernel:0")),
                          "Conv_1_bn"))
        pooled = x.mean(axis=(0, 1))
        return pooled @ self.weight(self.head, "kernel:0") + self.weight(
            self.head, "bias:0")

    def probabilities(self, image):
        z = self.logits(image)
        e = np.exp(z - z.max())
        return e / e.sum()
