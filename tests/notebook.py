"""The seed notebook's data loading and networks, kept as written there (sizes made arguments),
as the reference that tests/test_models.py and benchmarks/train_speed.py compare this project
against. Nothing in the pipeline uses it, so it is not part of the package."""

import torch
import torch.nn as nn
from PIL import Image
from torch.utils.data import Dataset


class OmniglotDataset(Dataset):
    """Opens, converts and transforms one PNG with PIL on every access."""

    def __init__(self, transform, samples):
        self.transform = transform
        self.samples = samples

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, idx):
        img_path, alphabet, label = self.samples[idx]
        img = Image.open(img_path).convert("L")
        img = self.transform(img)
        return img, alphabet, label


def custom_collate_fn(batch, num_alphabets):
    images, alphabets, labels = zip(*batch, strict=True)
    images = torch.stack(images)
    labels = torch.tensor(labels, dtype=torch.long)
    alphabet_tensor = torch.zeros(len(alphabets), num_alphabets)
    for i, alphabet_idx in enumerate(alphabets):
        alphabet_tensor[i, alphabet_idx] = 1.0
    return images, alphabet_tensor, labels


class MultiInputNet(nn.Module):
    def __init__(self, num_alphabets=30, num_classes=964):
        super().__init__()
        self.image_layer = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, padding=1),
            nn.MaxPool2d(kernel_size=2),
            nn.ELU(),
            nn.Flatten(),
            nn.Linear(16 * 32 * 32, 128),
        )
        self.alphabet_layer = nn.Sequential(nn.Linear(num_alphabets, 8), nn.ELU())
        self.classifier = nn.Sequential(nn.Linear(128 + 8, num_classes))

    def forward(self, x_image, x_alphabet):
        x_image = self.image_layer(x_image)
        x_alphabet = self.alphabet_layer(x_alphabet)
        x = torch.cat((x_image, x_alphabet), dim=1)
        return self.classifier(x)


class MultiOutputNet(nn.Module):
    def __init__(self, num_alpha, num_char):
        super().__init__()
        self.image_layer = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, padding=1),
            nn.MaxPool2d(kernel_size=2),
            nn.ELU(),
            nn.Flatten(),
            nn.Linear(16 * 32 * 32, 128),
        )
        self.classifier_alpha = nn.Linear(128, num_alpha)  # the notebook hard-codes 30
        self.classifier_char = nn.Linear(128, num_char)  # and 964

    def forward(self, x):
        x_image = self.image_layer(x)
        output_alpha = self.classifier_alpha(x_image)
        output_char = self.classifier_char(x_image)
        return output_alpha, output_char
