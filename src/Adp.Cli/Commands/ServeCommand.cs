using System.CommandLine;
using Adp.Purification;
using Adp.Serving;
using Adp.Serving.Hosting;
using Adp.Serving.Inference;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Adp.Cli.Commands;

/// <summary>`adp serve`: the defended classifier as an HTTP service (src/Adp.Serving).</summary>
public static class ServeCommand
{
    public static Command Create()
    {
        var classifier = new Option<string>("--classifier") { Description = "classifier checkpoint", Required = true };
        var score = new Option<string>("--score") { Description = "score-model checkpoint", Required = true };
        var runs = new Option<int>("--runs") { Description = "purification runs S per image", DefaultValueFactory = _ => 10 };
        var rule = new Option<DecisionRule>("--rule") { Description = "MeanSoftmax, LogitSum or MajorityVote", DefaultValueFactory = _ => DecisionRule.MeanSoftmax };
        var urls = new Option<string[]>("--urls")
        {
            Description = "addresses to listen on, e.g. http://127.0.0.1:5000 (several: repeat or separate with ';'; port 0 = any free port)",
            DefaultValueFactory = _ => ["http://127.0.0.1:5000"],
            AllowMultipleArgumentsPerToken = true,
        };
        var maxBatch = new Option<int>("--max-batch") { Description = "images purified together at most", DefaultValueFactory = _ => 32 };
        var maxWait = new Option<double>("--max-wait-ms") { Description = "how long a batch waits for more images after its first", DefaultValueFactory = _ => 10 };
        var queue = new Option<int>("--queue") { Description = "images waiting at most; beyond it requests get 503 with Retry-After", DefaultValueFactory = _ => 128 };
        var maxUpload = new Option<long>("--max-upload") { Description = "largest request body in bytes", DefaultValueFactory = _ => 1 << 20 };
        var drain = new Option<double>("--shutdown-timeout") { Description = "seconds Ctrl-C/SIGTERM waits for requests in flight", DefaultValueFactory = _ => 120 };
        var purifier = new PurifierOptions();
        var cmd = new Command("serve", "Serve the defended classifier over HTTP: POST /v1/classify and /v1/purify, a web page at /, " +
                                       "/metrics, /healthz, OpenAPI at /openapi/v1.json and /scalar; concurrent requests are purified in batches");
        foreach (var o in new Option[] { classifier, score, runs, rule, urls, maxBatch, maxWait, queue, maxUpload, drain }) cmd.Options.Add(o);
        // The preset's purifier (ADP or a variant, e.g. mnist's re-injection) unless --purifier names another.
        purifier.AddTo(cmd);
        cmd.SetAction(parse => CliSupport.Run(parse, () =>
        {
            var options = new ServeOptions
            {
                Urls = parse.GetValue(urls)!.SelectMany(u => u.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToArray(),
                MaxBatch = parse.GetValue(maxBatch),
                MaxWait = TimeSpan.FromMilliseconds(parse.GetValue(maxWait)),
                QueueCapacity = parse.GetValue(queue),
                MaxUploadBytes = parse.GetValue(maxUpload),
                ShutdownTimeout = TimeSpan.FromSeconds(parse.GetValue(drain)),
            };
            options.Validate();
            var device = TorchSharp.torch.device(CliSupport.ResolveDevice(parse));
            var (clf, cinfo, net, sinfo) = CliSupport.LoadDefense(parse.GetValue(classifier)!, parse.GetValue(score)!, device);
            using var models = new DefenseModels(clf, cinfo, net, sinfo, purifier.PresetName(parse, sinfo.Metadata), purifier.Read(parse, sinfo.Metadata),
                parse.GetValue(runs), parse.GetValue(rule), device, purifier.ReadVariant(parse, sinfo.Metadata));
            using var app = ServeHost.Build(models, options);
            try
            {
                app.Start();
            }
            catch (IOException e)
            {
                throw new AdpException($"--urls: cannot listen on {string.Join(", ", options.Urls)}: {e.Message.Split('\n')[0]}");
            }
            var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses ?? [];
            Console.WriteLine($"adp serve: {models.ClassifierInfo.Dataset}, classifier {cinfo.Path}, score model {sinfo.Path}; {models.Purifier.Describe()} " +
                              $"(preset {models.Preset}), S = {models.Runs}, rule {models.Rule}, threads {TorchSharp.torch.get_num_threads()}");
            foreach (var a in addresses) Console.WriteLine($"adp serve: listening on {a} (web page /, API reference /scalar, metrics /metrics)");
            Console.WriteLine("adp serve: Ctrl-C or SIGTERM stops, after answering the requests in flight");
            app.WaitForShutdown();
            Console.WriteLine("adp serve: stopped");
            return 0;
        }));
        return cmd;
    }
}
