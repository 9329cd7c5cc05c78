"""Exercise for chapter 4 (ResNet-18): Grad-CAM's map of a layer's activations.

Write `weighted_map(acts, grads)`. `pathmnist.evaluation.gradcam.grad_cam` runs the model
with a hook on the chosen layer (layer4 by default), keeps its activations A (B, K, h, w)
and takes the gradient of each image's class logit y_c with respect to them, dy_c/dA, of
the same shape; then it calls this function for the map (Selvaraju et al. 2017):

    alpha_k = mean over the h x w positions of dy_c / dA_k      one weight per channel
    L_c     = ReLU(sum_k alpha_k A_k)                            (B, h, w)

and upsamples L_c to the image and scales it to [0, 1] itself. A channel whose activation
raises the logit on average gets a positive weight; the ReLU keeps only the evidence for
the class. The map has the layer's resolution: 2x2 for layer4 at 64x64 with the ImageNet
stem (chapter 4's table), which is why chapter 13 also looks at layer3.

The oracle tests compare the package's grad_cam, with your function inside, with captum's
LayerGradCam and pytorch-grad-cam's GradCAM, and check that a logit that depends on one
region of the image gives a map that peaks there:

    python -m pathmnist.exercises check docs/exercises/grad_cam.py

Hints. `grads.mean(dim=(2, 3), keepdim=True)` is (B, K, 1, 1) and broadcasts against
acts; sum over dim 1, the channels; `torch.relu`. No loop.
"""

REPLACES = {"pathmnist.evaluation.gradcam._weighted_map": "weighted_map"}
ORACLE_TESTS = (
    "test_raw_map_equals_captum_layer_gradcam",
    "test_map_equals_pytorch_grad_cam",
    "test_map_peaks_in_the_region_the_logit_depends_on",
)


def weighted_map(acts, grads):
    """acts, grads (B, K, h, w) -> the Grad-CAM map ReLU(sum_k alpha_k A_k), (B, h, w)."""
    # YOUR CODE HERE
    raise NotImplementedError("write Grad-CAM's weighted map: see docs/exercises/grad_cam.py")
