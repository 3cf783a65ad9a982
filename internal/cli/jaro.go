package cli

// jaro returns the Jaro similarity of a and b (0 = nothing in common,
// 1 = equal), computed over runes. The reference suggests an option whose
// name scores above 0.7 against an unknown one.
func jaro(a, b string) float64 {
	ar, br := []rune(a), []rune(b)
	if len(ar) == 0 && len(br) == 0 {
		return 1
	}
	if len(ar) == 0 || len(br) == 0 {
		return 0
	}
	window := max(len(ar), len(br))/2 - 1
	if window < 0 {
		window = 0
	}
	aMatch := make([]bool, len(ar))
	bMatch := make([]bool, len(br))
	matches := 0
	for i, c := range ar {
		lo := max(0, i-window)
		hi := min(len(br), i+window+1)
		for j := lo; j < hi; j++ {
			if !bMatch[j] && br[j] == c {
				aMatch[i], bMatch[j] = true, true
				matches++
				break
			}
		}
	}
	if matches == 0 {
		return 0
	}
	transpositions, j := 0, 0
	for i, c := range ar {
		if !aMatch[i] {
			continue
		}
		for !bMatch[j] {
			j++
		}
		if br[j] != c {
			transpositions++
		}
		j++
	}
	m := float64(matches)
	return (m/float64(len(ar)) + m/float64(len(br)) + (m-float64(transpositions/2))/m) / 3
}
