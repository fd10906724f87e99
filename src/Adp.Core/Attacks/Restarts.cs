using static TorchSharp.torch;

namespace Adp.Attacks;

internal static class Restarts
{
    /// <summary>Validates the threat model and keeps the strongest of its restarts, all drawing from
    /// <paramref name="random"/> or, without one, from a generator seeded with the threat model's seed.</summary>
    public static Tensor Run(ThreatModel threat, RandomSource? random, Func<RandomSource, (Tensor Adv, Tensor Loss)> runOnce)
    {
        threat.Validate();
        using var g = new Generator((ulong)threat.Seed, CPU);
        var source = random ?? g;
        return KeepStrongest(threat.Restarts, () => runOnce(source));
    }

    /// <summary>Runs an attack <paramref name="count"/> times and keeps, per image, the result of highest loss.</summary>
    public static Tensor KeepStrongest(int count, Func<(Tensor Adv, Tensor Loss)> runOnce)
    {
        using var scope = NewDisposeScope();
        Tensor? best = null, bestLoss = null;
        for (int r = 0; r < count; r++)
        {
            var (adv, loss) = runOnce();
            if (best is null) { best = adv; bestLoss = loss; continue; }
            var better = loss.gt(bestLoss!);
            best = where(better.view(-1, 1, 1, 1), adv, best);
            bestLoss = where(better, loss, bestLoss!);
        }
        return best!.MoveToOuterDisposeScope();
    }
}
