using TorchSharp;
using static TorchSharp.torch;

namespace Adp.Data;

/// <summary>Training-time augmentation: random crop after zero padding, and random horizontal flips.</summary>
public sealed record Augmentation(bool HorizontalFlip = false, int CropPadding = 0)
{
    public static Augmentation None => new();

    public Tensor Apply(Tensor x, Generator g)
    {
        if (!HorizontalFlip && CropPadding == 0) return x.alias();
        using var scope = NewDisposeScope();
        var y = x;
        if (CropPadding > 0)
        {
            int p = CropPadding, n = (int)x.shape[0], h = (int)x.shape[2], w = (int)x.shape[3];
            var padded = nn.functional.pad(x, [p, p, p, p]);
            var offs = randint(2 * p + 1, [n, 2], dtype: ScalarType.Int64, generator: g).data<long>().ToArray();
            var crops = new Tensor[n];
            for (int i = 0; i < n; i++)
                crops[i] = padded[i].narrow(1, offs[2 * i], h).narrow(2, offs[2 * i + 1], w);
            y = stack(crops);
        }
        if (HorizontalFlip)
        {
            using var half = 0.5.ToScalar();  // held through the call: see Adp.Models.RootedScalars
            var mask = rand([x.shape[0], 1, 1, 1], generator: g).lt(half).to(x.device);
            y = where(mask, y.flip(3), y);
        }
        return y.MoveToOuterDisposeScope();
    }
}
