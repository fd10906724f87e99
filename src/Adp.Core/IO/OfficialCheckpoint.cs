using System.Collections;
using System.IO.Compression;
using System.Text;
using Adp.Models;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Adp.IO;

/// <summary>
/// Reads score-model checkpoints as the official NCSNv2 code (ermongroup/ncsnv2, runners/ncsn_runner.py) and the ADP
/// research code save them: <c>torch.save([model.state_dict(), optimizer.state_dict(), epoch, step,
/// ema_helper.state_dict()], path)</c> with the model in <c>nn.DataParallel</c> (keys prefixed "module."), a "sigmas"
/// buffer with the noise levels, and the EMA shadow holding the parameters only. Tensors are read by TorchSharp.PyBridge
/// (a maintained reader of PyTorch's zip pickles); PyBridge expects a dict at the top of the pickle, so the pickle is
/// wrapped as {"root": &lt;the list&gt;} before it reads it. Legacy (pre-1.6, non-zip) files are refused with a clear error.
/// </summary>
public static class OfficialCheckpoint
{
    /// <summary>The state dict of the chosen weights ("module." removed), as a <see cref="SafeTensors.File"/> so the
    /// safetensors import path applies; metadata: epoch, step, weights. For <see cref="WeightsChoice.Ema"/> the EMA
    /// shadow replaces every parameter it holds; buffers (sigmas) come from the model's state dict.</summary>
    /// <exception cref="AdpException">not a zip checkpoint of this layout, a pickle protocol other than 2, missing EMA.</exception>
    public static SafeTensors.File Read(string path, WeightsChoice weights)
    {
        if (!File.Exists(path)) throw new AdpException($"{path}: file not found");
        object root;
        try
        {
            using var wrapped = WrapTopLevel(path);
            var table = PyTorchUnpickler.UnpickleStateDict(wrapped);
            root = table["root"] ?? throw new AdpException($"{path}: empty checkpoint");
        }
        catch (AdpException) { throw; }
        catch (Exception e) when (e is InvalidDataException or InvalidCastException or NotImplementedException or InvalidOperationException
                                      or Razorvine.Pickle.PickleException or IOException or ArgumentException)
        {
            throw new AdpException($"{path}: not a readable PyTorch checkpoint ({e.GetType().Name}: {e.Message.Split('\n')[0]})");
        }
        Hashtable model;
        Hashtable? ema = null;
        long epoch = -1, step = -1;
        switch (root)
        {
            case ArrayList list when list.Count >= 1 && list[0] is Hashtable m:
                model = m;
                if (list.Count >= 3) epoch = Convert.ToInt64(list[2]);
                if (list.Count >= 4) step = Convert.ToInt64(list[3]);
                if (list.Count >= 5) ema = list[4] as Hashtable;
                break;
            case Hashtable m:  // a bare state_dict saved with torch.save(model.state_dict())
                model = m;
                break;
            default:
                throw new AdpException($"{path}: expected the official layout [model state_dict, optimizer, epoch, step, EMA state] or a state_dict");
        }
        if (weights == WeightsChoice.Ema && ema is null)
            throw new AdpException($"{path}: --weights Ema, but the checkpoint holds no EMA state (its 5th entry)");
        var tensors = new Dictionary<string, Tensor>();
        foreach (DictionaryEntry kv in model)
            if (kv.Value is Tensor t) tensors[Strip((string)kv.Key)] = t.to(ScalarType.Float32).clone();
        if (weights == WeightsChoice.Ema)
            foreach (DictionaryEntry kv in ema!)
            {
                var name = Strip((string)kv.Key);
                if (kv.Value is not Tensor t) continue;
                if (!tensors.ContainsKey(name)) throw new AdpException($"{path}: EMA entry '{name}' is not a model parameter");
                tensors[name].Dispose();
                tensors[name] = t.to(ScalarType.Float32).clone();
            }
        DisposeAll(root);
        return new SafeTensors.File
        {
            Path = path,
            Tensors = tensors,
            Metadata = new Dictionary<string, string> { ["epoch"] = epoch.ToString(), ["step"] = step.ToString(), ["weights"] = weights.ToString() },
        };
    }

    private static string Strip(string key) => key.StartsWith("module.") ? key["module.".Length..] : key;

    private static void DisposeAll(object? o)
    {
        switch (o)
        {
            case Tensor t: t.Dispose(); break;
            case Hashtable h: foreach (DictionaryEntry e in h) DisposeAll(e.Value); break;
            case ArrayList l: foreach (var e in l) DisposeAll(e); break;
        }
    }

    /// <summary>A copy of the zip whose data.pkl pickles {"root": original object}: PROTO 2, EMPTY_DICT, the key, the
    /// original opcodes without their PROTO and STOP, SETITEM, STOP. The original's memo is untouched (no memo ops added).</summary>
    private static MemoryStream WrapTopLevel(string path)
    {
        using var input = File.OpenRead(path);
        Span<byte> sig = stackalloc byte[4];
        if (input.Read(sig) != 4 || sig[0] != 0x50 || sig[1] != 0x4b || sig[2] != 0x03 || sig[3] != 0x04)
            throw new AdpException($"{path}: not a zip-format PyTorch checkpoint (saved by PyTorch < 1.6 or not a checkpoint); " +
                                   "re-save it with torch.save in PyTorch ≥ 1.6");
        input.Position = 0;
        using var source = new ZipArchive(input, ZipArchiveMode.Read);
        var pkl = source.Entries.FirstOrDefault(e => e.Name == "data.pkl")
                  ?? throw new AdpException($"{path}: zip without data.pkl (not a torch.save checkpoint)");
        var output = new MemoryStream();
        using (var target = new ZipArchive(output, ZipArchiveMode.Create, leaveOpen: true))
            foreach (var entry in source.Entries)
            {
                using var from = entry.Open();
                var to = target.CreateEntry(entry.FullName, CompressionLevel.NoCompression);
                using var w = to.Open();
                if (entry != pkl) { from.CopyTo(w); continue; }
                using var ms = new MemoryStream();
                from.CopyTo(ms);
                var body = ms.ToArray();
                if (body.Length < 3 || body[0] != 0x80 || body[1] != 2 || body[^1] != (byte)'.')
                    throw new AdpException($"{path}: data.pkl is not a protocol-2 pickle (torch.save's default); re-save it with torch.save");
                var key = Encoding.UTF8.GetBytes("root");
                w.Write([0x80, 2, (byte)'}', (byte)'X', (byte)key.Length, 0, 0, 0]);
                w.Write(key);
                w.Write(body, 2, body.Length - 3);
                w.Write([(byte)'s', (byte)'.']);
            }
        output.Position = 0;
        return output;
    }
}
