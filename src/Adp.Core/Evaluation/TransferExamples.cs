using Adp.Attacks;
using Adp.Data;
using Adp.Purification;
using static TorchSharp.torch;

namespace Adp.Evaluation;

/// <summary>Transfer-attack studies on held-out images, shared by the snapshot curve and the preset tuning: the attack run on
/// the bare classifier, and the defense's correct count on given images, both with per-image random streams (so they do not
/// depend on the batch size).</summary>
public static class TransferExamples
{
    /// <summary>Returns the adversarial images [N, C, H, W] in [0, 1] for every image of <paramref name="data"/> (detached).</summary>
    public static Tensor Compute(nn.Module<Tensor, Tensor> classifier, ImageDataset data, AttackSpec transfer, long seed, Device device, int batch = 64)
    {
        // Every image is attacked here and the defense's accuracy is measured on all of them: skipping would be ignored.
        if (transfer.SkipMisclassified)
            throw new AdpException($"--attack: skip-misclassified applies to eval robust only; the transfer attack '{transfer.Label}' attacks every image");
        var threat = new ThreatModel(transfer.Norm, transfer.Epsilon, transfer.EffectiveStep, transfer.Iterations, transfer.Restarts,
            transfer.RandomStart, transfer.Loss, seed);
        var parts = new List<Tensor>();
        using var x = data.Images(0, data.Count, device);
        for (int s = 0; s < data.Count; s += batch)
        {
            using var scope = NewDisposeScope();
            int n = Math.Min(batch, data.Count - s);
            var adv = new Pgd(threat).Perturb(new ClassifierModel(classifier), x.narrow(0, s, n), data.Labels.narrow(0, s, n).to(device),
                PerImageSource.For(seed, Enumerable.Range(s, n).Select(i => (long)i), transfer.Id(), 1));
            parts.Add(adv.MoveToOuterDisposeScope());
        }
        var all = cat(parts).DetachFromDisposeScope();
        foreach (var p in parts) p.Dispose();
        return all;
    }

    /// <summary>How many of <paramref name="images"/> [N, C, H, W] the defense classifies as <paramref name="labels"/> [N] (CPU,
    /// int64) under the mean-softmax rule; image i draws its purification noise from the stream (seed, i, purpose).</summary>
    public static long DefendedCorrect(DefendedClassifier defense, Tensor images, Tensor labels, long seed, long purpose, int batch = 100)
    {
        long correct = 0;
        long count = images.shape[0];
        for (int s = 0; s < count; s += batch)
        {
            using var scope = NewDisposeScope();
            int n = (int)Math.Min(batch, count - s);
            using var o = defense.Classify(images.narrow(0, s, n), PerImageSource.For(seed, Enumerable.Range(s, n).Select(i => (long)i), purpose));
            correct += o.Predict(DecisionRule.MeanSoftmax).cpu().eq(labels.narrow(0, s, n)).sum().item<long>();
        }
        return correct;
    }
}
