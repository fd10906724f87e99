using System.CommandLine;
using Adp.Cli;
using Adp.Cli.Commands;

// Redirected output (a file, a pipe, a log) has no console width; Spectre.Console would wrap tables at 80 columns.
if (Console.IsOutputRedirected) Spectre.Console.AnsiConsole.Profile.Width = CliSupport.RedirectedWidth;

var root = new RootCommand("adp — adversarial purification with score-based generative models (Yoon, Hwang & Lee, ICML 2021)");
root.Options.Add(CliSupport.DataDir);
root.Options.Add(CliSupport.Device);
root.Options.Add(CliSupport.Threads);
root.Subcommands.Add(InfoCommand.Create());
root.Subcommands.Add(DataCommands.Create());
root.Subcommands.Add(TrainCommands.Create());
root.Subcommands.Add(EvalCommands.Create());
root.Subcommands.Add(PurifyCommands.CreatePurify());
root.Subcommands.Add(PurifyCommands.CreateClassify());
root.Subcommands.Add(ModelCommands.CreateExport());
root.Subcommands.Add(ModelCommands.CreateImport());
root.Subcommands.Add(ModelCommands.CreateStrip());
root.Subcommands.Add(ServeCommand.Create());

var parse = root.Parse(args);
if (parse.Errors.Count > 0 && parse.Action is not System.CommandLine.Help.HelpAction)
    return CliSupport.Fail(parse.Errors[0].Message);
return parse.Invoke();
