"""`securefiles completion bash|zsh`: shell completion of commands and options.

Written from the parser itself, so a new command completes without anyone editing a script.
zsh loads the same function through its bash compatibility layer (bashcompinit).
"""

from __future__ import annotations

import argparse
import shlex

from securefiles.cli.parser import Subcommands, option_strings, subcommands, walk

_BASH = """\
# securefiles completion for bash: eval "$(securefiles completion bash)"
_securefiles() {
  local cur=${COMP_WORDS[COMP_CWORD]} path="" word i
  for ((i = 1; i < COMP_CWORD; i++)); do
    word=${COMP_WORDS[i]}
    case " $_securefiles_paths " in
      *" ${path:+$path/}$word "*) path=${path:+$path/}$word ;;
    esac
  done
  local words
  case "$path" in
%(cases)s
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
_securefiles_paths=%(paths)s
complete -o default -F _securefiles securefiles
"""

_ZSH = """\
#compdef securefiles
# securefiles completion for zsh: eval "$(securefiles completion zsh)"
(( $+functions[compdef] )) || { autoload -Uz compinit && compinit -i }
autoload -U +X bashcompinit && bashcompinit
%(bash)s"""


def bash_script(root: argparse.ArgumentParser) -> str:
    cases = []
    paths = []
    for path, parser in walk(root):
        words = [*subcommands(parser), *(o for o in option_strings(parser) if o.startswith("--"))]
        key = "/".join(path)
        if path:
            paths.append(key)
        pattern = shlex.quote(key) if key else '""'
        cases.append(f"    {pattern}) words={shlex.quote(' '.join(words))} ;;")
    return _BASH % {"cases": "\n".join(cases), "paths": shlex.quote(" ".join(paths))}


def zsh_script(root: argparse.ArgumentParser) -> str:
    return _ZSH % {"bash": bash_script(root)}


def register(subparsers: Subcommands, root: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser("completion", help="print a shell completion script (bash or zsh)")
    p.add_argument("shell", choices=("bash", "zsh"))

    def handler(args: argparse.Namespace) -> int:
        print(bash_script(root) if args.shell == "bash" else zsh_script(root), end="")
        return 0

    p.set_defaults(handler=handler)
