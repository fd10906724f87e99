namespace Adp.Models;

/// <summary>
/// How many tensor elements (parameters and buffers: the state_dict) a network of a given configuration has, computed
/// from the configuration without building it. A checkpoint's configuration comes from its metadata, so a corrupted
/// or hostile file could ask for a network of terabytes; loaders compare this count with the elements the file holds
/// (it must hold every one of them) before they build anything. The counts mirror the constructors of
/// <see cref="Ncsnv2"/> and <see cref="Classifier"/> (a test checks them against built networks). Arithmetic
/// saturates at <see cref="long.MaxValue"/>.
/// </summary>
public static class ModelSize
{
    private static long Add(params long[] xs)
    {
        long s = 0;
        foreach (var x in xs) s = x > long.MaxValue - s ? long.MaxValue : s + x;
        return s;
    }

    private static long Mul(params long[] xs)
    {
        long p = 1;
        foreach (var x in xs)
        {
            if (x == 0) return 0;
            p = p > long.MaxValue / x ? long.MaxValue : p * x;
        }
        return p;
    }

    private static long Conv(long i, long o, long k, bool bias = true) => Add(Mul(i, o, k, k), bias ? o : 0);
    private static long Linear(long i, long o) => Add(Mul(i, o), o);
    private static long BatchNorm(long c) => Add(Mul(4, c), 1);  // weight, bias, running mean and var, num_batches_tracked
    private static long InstanceNormPlusPlus(long c) => Mul(3, c);  // alpha, gamma, beta

    // ---- NCSNv2 ----

    private static long Residual(long i, long o, bool down, int dilation)
    {
        long n = Add(InstanceNormPlusPlus(i));
        if (down)
        {
            // dilated: conv1 i→i, conv2 i→o, shortcut i→o (3×3); else conv1 i→i (3×3), conv2 i→o (3×3, mean pool), shortcut i→o (1×1)
            n = Add(n, Conv(i, i, 3), Conv(i, o, 3), dilation > 1 ? Conv(i, o, 3) : Conv(i, o, 1), InstanceNormPlusPlus(i));
        }
        else
        {
            n = Add(n, Conv(i, o, 3), Conv(o, o, 3), InstanceNormPlusPlus(o), i != o ? Conv(i, o, dilation > 1 ? 3 : 1) : 0);
        }
        return n;
    }

    private static long Rcu(long f, long blocks, long stages) => Mul(blocks, stages, Conv(f, f, 3, bias: false));

    private static long Refine(long[] inPlanes, long f, bool start = false, bool end = false) => Add(
        Add(inPlanes.Select(p => Rcu(p, 2, 2)).ToArray()),
        Rcu(f, end ? 3 : 1, 2),
        start ? 0 : Add(inPlanes.Select(p => Conv(p, f, 3)).ToArray()),
        Mul(2, Conv(f, f, 3, bias: false)));

    /// <summary>State-dict elements of <see cref="Ncsnv2"/> with this configuration.</summary>
    public static long ScoreModelElements(ScoreModelConfig c)
    {
        long n = c.Ngf, ch = c.Channels;
        return Add(
            Conv(ch, n, 3), InstanceNormPlusPlus(n), Conv(n, ch, 3),
            Mul(2, Residual(n, n, false, 1)),
            Residual(n, 2 * n, true, 1), Residual(2 * n, 2 * n, false, 1),
            Residual(2 * n, 2 * n, true, 2), Residual(2 * n, 2 * n, false, 2),
            Residual(2 * n, 2 * n, true, 4), Residual(2 * n, 2 * n, false, 4),
            Refine([2 * n], 2 * n, start: true), Refine([2 * n, 2 * n], 2 * n), Refine([2 * n, 2 * n], n), Refine([n, n], n, end: true));
    }

    // ---- classifiers ----

    private static long WideBasic(long i, long p, long stride) =>
        Add(BatchNorm(i), Conv(i, p, 3), BatchNorm(p), Conv(p, p, 3), stride != 1 || i != p ? Conv(i, p, 1) : 0);

    private static long BasicBlock(long i, long p, long stride) =>
        Add(Conv(i, p, 3, bias: false), BatchNorm(p), Conv(p, p, 3, bias: false), BatchNorm(p),
            stride != 1 || i != p ? Add(Conv(i, p, 1, bias: false), BatchNorm(p)) : 0);

    /// <summary>State-dict elements of the classifier <see cref="Classifier.Create"/> builds for this configuration
    /// (call <see cref="ClassifierConfig.Validate"/> first: depths it refuses have no count).</summary>
    public static long ClassifierElements(ClassifierConfig c)
    {
        long k = c.NumClasses;
        switch (c.Architecture)
        {
            case ClassifierArchitecture.SmallCnn:
            {
                long s = c.ImageSize / 4;
                return Add(Conv(c.Channels, 32, 5), Conv(32, 64, 5), Linear(Mul(64, s, s), 1024), Linear(1024, k));
            }
            case ClassifierArchitecture.WideResNet:
            {
                long n = (c.Depth - 4) / 6, w = c.Width;
                long[] stages = [16, Mul(16, w), Mul(32, w), Mul(64, w)];
                long total = Conv(c.Channels, 16, 3), inPlanes = 16;
                for (int st = 1; st <= 3; st++)
                {
                    // Blocks after the first of a stage are all alike.
                    if (n < 1) continue;  // no blocks (a depth Validate refuses)
                    total = Add(total, WideBasic(inPlanes, stages[st], st == 1 ? 1 : 2), Mul(n - 1, WideBasic(stages[st], stages[st], 1)));
                    inPlanes = stages[st];
                }
                return Add(total, BatchNorm(stages[3]), Linear(stages[3], k));
            }
            default:
            {
                int[] blocks = c.Depth switch { 18 => [2, 2, 2, 2], 34 => [3, 4, 6, 3], _ => [1, 1, 1, 1] };
                long w = c.Width, inPlanes = w;
                long total = Add(Conv(c.Channels, w, 3, bias: false), BatchNorm(w));
                long[] planes = [w, Mul(2, w), Mul(4, w), Mul(8, w)];
                for (int st = 0; st < 4; st++)
                {
                    total = Add(total, BasicBlock(inPlanes, planes[st], st == 0 ? 1 : 2), Mul(blocks[st] - 1, BasicBlock(planes[st], planes[st], 1)));
                    inPlanes = planes[st];
                }
                return Add(total, Linear(planes[3], k));
            }
        }
    }
}
