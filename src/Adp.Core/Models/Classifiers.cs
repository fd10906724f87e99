using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace Adp.Models;

/// <summary>Per-channel (x − mean)/std applied at the start of a classifier; not a parameter, not in state_dict.</summary>
public sealed class InputNormalization(float[]? mean, float[]? std)
{
    public Tensor Apply(Tensor x)
    {
        if (mean is null || std is null) return x.alias();
        using var m = tensor(mean, device: x.device).view(1, -1, 1, 1);
        using var s = tensor(std, device: x.device).view(1, -1, 1, 1);
        return (x - m) / s;
    }
}

/// <summary>Base of the classifiers: remembers its config and checks input shapes.</summary>
public abstract class Classifier(string name, ClassifierConfig config) : Module<Tensor, Tensor>(name)
{
    public ClassifierConfig Config { get; } = config;
    protected InputNormalization Normalization { get; } = new(config.Mean, config.Std);

    protected void CheckInput(Tensor x)
    {
        if (x.dim() != 4 || x.shape[1] != Config.Channels || x.shape[2] != Config.ImageSize || x.shape[3] != Config.ImageSize)
            throw new AdpException($"classifier expects N×{Config.Channels}×{Config.ImageSize}×{Config.ImageSize} images, got {string.Join("×", x.shape)}");
    }

    public static Classifier Create(ClassifierConfig c) => c.Architecture switch
    {
        ClassifierArchitecture.SmallCnn => new SmallCnn(c),
        ClassifierArchitecture.WideResNet => new WideResNet(c),
        ClassifierArchitecture.ResNet => new CifarResNet(c),
        _ => throw new AdpException($"unknown classifier architecture {c.Architecture}"),
    };
}

/// <summary>The MNIST classifier of the paper: conv5×5-32 → pool → conv5×5-64 → pool → FC1024 → FC10, ReLU.</summary>
public sealed class SmallCnn : Classifier
{
    private readonly Conv2d conv1, conv2;
    private readonly Linear fc1, fc2;

    public SmallCnn(ClassifierConfig c) : base(nameof(SmallCnn), c)
    {
        int s = c.ImageSize / 4;
        conv1 = Conv2d(c.Channels, 32, 5, padding: 2);
        conv2 = Conv2d(32, 64, 5, padding: 2);
        fc1 = Linear(64 * s * s, 1024);
        fc2 = Linear(1024, c.NumClasses);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        CheckInput(x);
        using var scope = NewDisposeScope();
        var h = Normalization.Apply(x);
        h = F.max_pool2d(F.relu(conv1.forward(h)), 2);
        h = F.max_pool2d(F.relu(conv2.forward(h)), 2);
        h = F.relu(fc1.forward(h.flatten(1)));
        return fc2.forward(h).MoveToOuterDisposeScope();
    }
}

/// <summary>WideResNet block as in the code the paper used: BN → ReLU → conv (→ dropout) → BN → ReLU → conv
/// (stride on the second conv), plus a 1×1-conv shortcut when the shape changes. Convs have biases.</summary>
public sealed class WideBasic : Module<Tensor, Tensor>
{
    private readonly BatchNorm2d bn1, bn2;
    private readonly Conv2d conv1, conv2;
    private readonly Dropout dropout;
    private readonly Sequential? shortcut;

    public WideBasic(long inPlanes, long planes, double dropoutRate, long stride) : base(nameof(WideBasic))
    {
        bn1 = BatchNorm2d(inPlanes);
        conv1 = Conv2d(inPlanes, planes, 3, padding: 1);
        dropout = Dropout(dropoutRate);
        bn2 = BatchNorm2d(planes);
        conv2 = Conv2d(planes, planes, 3, stride: stride, padding: 1);
        if (stride != 1 || inPlanes != planes) shortcut = Sequential(Conv2d(inPlanes, planes, 1, stride: stride));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var o = dropout.forward(conv1.forward(F.relu(bn1.forward(x))));
        o = conv2.forward(F.relu(bn2.forward(o)));
        return o.Plus(shortcut is null ? x : shortcut.forward(x)).MoveToOuterDisposeScope();  // Plus: see RootedScalars
    }
}

/// <summary>WideResNet-depth-k (Zagoruyko & Komodakis), the paper's CIFAR-10 classifier at 28-10.</summary>
public sealed class WideResNet : Classifier
{
    private readonly Conv2d conv1;
    private readonly Sequential layer1, layer2, layer3;
    private readonly BatchNorm2d bn1;
    private readonly Linear linear;

    public WideResNet(ClassifierConfig c) : base(nameof(WideResNet), c)
    {
        if ((c.Depth - 4) % 6 != 0) throw new AdpException($"WideResNet depth must be 6n+4, got {c.Depth}");
        int n = (c.Depth - 4) / 6, k = c.Width;
        long[] stages = [16, 16 * k, 32 * k, 64 * k];
        long inPlanes = 16;
        conv1 = Conv2d(c.Channels, stages[0], 3, padding: 1);
        Sequential Layer(long planes, long stride)
        {
            var blocks = new List<Module<Tensor, Tensor>>();
            for (int i = 0; i < n; i++)
            {
                blocks.Add(new WideBasic(inPlanes, planes, c.Dropout, i == 0 ? stride : 1));
                inPlanes = planes;
            }
            return Sequential(blocks);
        }
        layer1 = Layer(stages[1], 1);
        layer2 = Layer(stages[2], 2);
        layer3 = Layer(stages[3], 2);
        bn1 = BatchNorm2d(stages[3], momentum: 0.9);
        linear = Linear(stages[3], c.NumClasses);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        CheckInput(x);
        using var scope = NewDisposeScope();
        var o = conv1.forward(Normalization.Apply(x));
        o = layer3.forward(layer2.forward(layer1.forward(o)));
        o = F.relu(bn1.forward(o));
        o = F.adaptive_avg_pool2d(o, 1).flatten(1);
        return linear.forward(o).MoveToOuterDisposeScope();
    }
}

/// <summary>Basic block of the CIFAR ResNet (He et al.), post-activation, 1×1 conv + BN shortcut.</summary>
public sealed class BasicBlock : Module<Tensor, Tensor>
{
    private readonly Conv2d conv1, conv2;
    private readonly BatchNorm2d bn1, bn2;
    private readonly Sequential? shortcut;

    public BasicBlock(long inPlanes, long planes, long stride) : base(nameof(BasicBlock))
    {
        conv1 = Conv2d(inPlanes, planes, 3, stride: stride, padding: 1, bias: false);
        bn1 = BatchNorm2d(planes);
        conv2 = Conv2d(planes, planes, 3, padding: 1, bias: false);
        bn2 = BatchNorm2d(planes);
        if (stride != 1 || inPlanes != planes)
            shortcut = Sequential(Conv2d(inPlanes, planes, 1, stride: stride, bias: false), BatchNorm2d(planes));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var o = F.relu(bn1.forward(conv1.forward(x)));
        o = bn2.forward(conv2.forward(o));
        return F.relu(o.Plus(shortcut is null ? x : shortcut.forward(x))).MoveToOuterDisposeScope();
    }
}

/// <summary>CIFAR ResNet (the common 3×3-stem variant): ResNet-18 at base width 64, or narrower.</summary>
public sealed class CifarResNet : Classifier
{
    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly Sequential layer1, layer2, layer3, layer4;
    private readonly Linear linear;

    public CifarResNet(ClassifierConfig c) : base(nameof(CifarResNet), c)
    {
        int[] blocks = c.Depth switch
        {
            18 => [2, 2, 2, 2],
            34 => [3, 4, 6, 3],
            10 => [1, 1, 1, 1],
            _ => throw new AdpException($"ResNet depth must be 10, 18 or 34, got {c.Depth}"),
        };
        long w = c.Width, inPlanes = w;
        conv1 = Conv2d(c.Channels, w, 3, padding: 1, bias: false);
        bn1 = BatchNorm2d(w);
        Sequential Layer(long planes, int count, long stride)
        {
            var list = new List<Module<Tensor, Tensor>>();
            for (int i = 0; i < count; i++) { list.Add(new BasicBlock(inPlanes, planes, i == 0 ? stride : 1)); inPlanes = planes; }
            return Sequential(list);
        }
        layer1 = Layer(w, blocks[0], 1);
        layer2 = Layer(2 * w, blocks[1], 2);
        layer3 = Layer(4 * w, blocks[2], 2);
        layer4 = Layer(8 * w, blocks[3], 2);
        linear = Linear(8 * w, c.NumClasses);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        CheckInput(x);
        using var scope = NewDisposeScope();
        var o = F.relu(bn1.forward(conv1.forward(Normalization.Apply(x))));
        o = layer4.forward(layer3.forward(layer2.forward(layer1.forward(o))));
        o = F.adaptive_avg_pool2d(o, 1).flatten(1);
        return linear.forward(o).MoveToOuterDisposeScope();
    }
}
