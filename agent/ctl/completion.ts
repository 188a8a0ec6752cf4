// `lightlyctl completion bash`: the bash completion script, generated from the one command table.

/** Every command lightlyctl takes, with the options each accepts (completion and usage share it). */
export const COMMANDS: Record<string, string[]> = {
  'bgp status': ['--json'],
  routes: ['--json'],
  doctor: ['--json', '--lab', '--dest-facts', '--dest-socket', '--port', '--family'],
  'doctor-facts': ['--remote-node', '--port'],
  'completion bash': [],
};
export const GLOBAL_OPTIONS = ['--socket', '--help', '--version'];

export function bashCompletion(): string {
  const firsts = [...new Set(Object.keys(COMMANDS).map((c) => c.split(' ')[0]!))];
  const cases = Object.entries(COMMANDS)
    .map(([command, options]) => {
      const [first, second] = command.split(' ');
      return second
        ? `    ${first}) if [ "$cword_cmd" -eq 1 ]; then words_list="${second}"; else words_list="${options.join(' ')}"; fi ;;`
        : `    ${first}) words_list="${options.join(' ')}" ;;`;
    })
    .filter((line, i, all) => all.findIndex((l) => l.split(')')[0] === line.split(')')[0]) === i);
  return `# bash completion for lightlyctl: source <(lightlyctl completion bash)
_lightlyctl() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}" cmd="" cword_cmd=0 i words_list
  case "$prev" in
    --socket|--dest-socket|--dest-facts|--lab) COMPREPLY=( $(compgen -f -- "$cur") ); return ;;
  esac
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "\${COMP_WORDS[i]}" in
      --socket|--dest-socket|--dest-facts|--lab|--remote-node|--port) ((i++)) ;;
      -*) ;;
      *) if [ -z "$cmd" ]; then cmd="\${COMP_WORDS[i]}"; fi; ((cword_cmd++)) ;;
    esac
  done
  case "$cmd" in
    "") words_list="${firsts.join(' ')} ${GLOBAL_OPTIONS.join(' ')}" ;;
${cases.join('\n')}
  esac
  COMPREPLY=( $(compgen -W "$words_list" -- "$cur") )
}
complete -F _lightlyctl lightlyctl
`;
}
